/**
 * The commands a step script calls, read from its text the way the shell reads it: comments
 * stripped, quotes respected, command substitutions ($(...) and `...`, also inside double
 * quotes) parsed as scripts of their own, case patterns, assignments and redirections skipped.
 * Good enough for the POSIX sh our steps use (no here-documents, no aliases, no eval).
 *
 * A shebang names the interpreter: `#!/usr/bin/env python3` calls env and python3, and a
 * non-shell script (Python) calls nothing else through the shell.
 */

/** Words that open or continue a command list rather than name a command. */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'while', 'until', 'for', 'in', 'case', 'esac', '!', '{', '}']);

/** Shell builtins and special built-ins of POSIX sh (dash and bash provide them): they need nothing from the image. */
export const SHELL_BUILTINS = new Set([
  ':', '.', 'break', 'cd', 'continue', 'eval', 'exec', 'exit', 'export', 'readonly', 'return', 'set', 'shift', 'times', 'trap', 'unset',
  'alias', 'bg', 'command', 'false', 'fc', 'fg', 'getopts', 'hash', 'jobs', 'kill', 'read', 'true', 'type', 'ulimit', 'umask',
  'unalias', 'wait', 'echo', 'printf', 'test', '[', 'local', 'pwd',
]);

interface Token {
  readonly kind: 'word' | 'op';
  readonly text: string;
}

/** Finds the end of a $( ... ) starting at i (just after the opening parenthesis). Returns the index of the closing one. */
function matchParen(s: string, i: number): number {
  let depth = 1;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === "'") {
      i = s.indexOf("'", i + 1) + 1;
      if (i === 0) throw new Error('unterminated single quote');
      continue;
    }
    if (c === '"') {
      i = skipDouble(s, i + 1);
      continue;
    }
    if (c === '#' && (i === 0 || /\s|[;(|&]/.test(s[i - 1]))) {
      const nl = s.indexOf('\n', i);
      i = nl < 0 ? s.length : nl;
      continue;
    }
    if (c === '(') depth++;
    if (c === ')' && --depth === 0) return i;
    i++;
  }
  throw new Error('unterminated $(');
}

/** The index of the brace closing a ${ ... } opened before i (nested ${}, quotes and substitutions respected). */
function matchBrace(s: string, i: number, subs: string[]): number {
  while (i < s.length) {
    const c = s[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === "'") {
      i = s.indexOf("'", i + 1) + 1;
      continue;
    }
    if (c === '"') {
      const end = skipDouble(s, i + 1);
      collectSubs(s.slice(i + 1, end - 1), subs);
      i = end;
      continue;
    }
    if (c === '$' && s[i + 1] === '{') {
      i = matchBrace(s, i + 2, subs) + 1;
      continue;
    }
    if (c === '$' && s[i + 1] === '(') {
      const close = matchParen(s, i + 2);
      if (s[i + 2] !== '(') subs.push(s.slice(i + 2, close));
      i = close + 1;
      continue;
    }
    if (c === '}') return i;
    i++;
  }
  throw new Error('unterminated ${');
}

/** Command substitutions inside the text of a double-quoted string. */
function collectSubs(inner: string, subs: string[]): void {
  for (let j = 0; j < inner.length; j++) {
    if (inner[j] === '\\') {
      j++;
      continue;
    }
    if (inner[j] === '$' && inner[j + 1] === '(') {
      const close = matchParen(inner, j + 2);
      if (inner[j + 2] !== '(') subs.push(inner.slice(j + 2, close));
      j = close;
    }
  }
}

/** Index just after the closing double quote of a string opened before i. */
function skipDouble(s: string, i: number): number {
  while (i < s.length) {
    if (s[i] === '\\') {
      i += 2;
      continue;
    }
    if (s[i] === '$' && s[i + 1] === '(') {
      i = matchParen(s, i + 2) + 1;
      continue;
    }
    if (s[i] === '"') return i + 1;
    i++;
  }
  throw new Error('unterminated double quote');
}

/** Splits a script into words and operators; command substitutions found on the way go to `subs`. */
function tokenize(s: string, subs: string[]): Token[] {
  const out: Token[] = [];
  let i = 0;
  let word = '';
  let inWord = false;
  const flush = () => {
    if (inWord) out.push({ kind: 'word', text: word });
    word = '';
    inWord = false;
  };
  while (i < s.length) {
    const c = s[i];
    if (c === '\\') {
      if (s[i + 1] === '\n') {
        i += 2;
        continue;
      }
      word += s.slice(i, i + 2);
      inWord = true;
      i += 2;
      continue;
    }
    if (c === '#' && !inWord) {
      const nl = s.indexOf('\n', i);
      i = nl < 0 ? s.length : nl;
      continue;
    }
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new Error('unterminated single quote');
      word += s.slice(i, end + 1);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      const end = skipDouble(s, i + 1);
      // command substitutions inside the quotes run too
      collectSubs(s.slice(i + 1, end - 1), subs);
      word += s.slice(i, end);
      inWord = true;
      i = end;
      continue;
    }
    if (c === '$' && s[i + 1] === '(') {
      const arithmetic = s[i + 2] === '(';
      const close = matchParen(s, i + 2);
      if (!arithmetic) subs.push(s.slice(i + 2, close));
      word += s.slice(i, close + 1);
      inWord = true;
      i = close + 1;
      continue;
    }
    if (c === '$' && s[i + 1] === '{') {
      const close = matchBrace(s, i + 2, subs);
      word += s.slice(i, close + 1);
      inWord = true;
      i = close + 1;
      continue;
    }
    if (c === '`') {
      const close = s.indexOf('`', i + 1);
      subs.push(s.slice(i + 1, close));
      word += s.slice(i, close + 1);
      inWord = true;
      i = close + 1;
      continue;
    }
    if (c === '\n' || c === ';' || c === '|' || c === '&' || c === '(' || c === ')') {
      flush();
      const two = s.slice(i, i + 2);
      const op = ['&&', '||', ';;'].includes(two) ? two : c;
      out.push({ kind: 'op', text: op === '\n' ? ';' : op });
      i += op.length;
      continue;
    }
    if (c === '<' || c === '>') {
      // a redirection: the operator, then its target word (skipped by the caller)
      flush();
      let j = i;
      while (s[j] === '<' || s[j] === '>' || s[j] === '&') j++;
      out.push({ kind: 'op', text: 'redirect' });
      i = j;
      continue;
    }
    if (/\s/.test(c)) {
      flush();
      i++;
      continue;
    }
    word += c;
    inWord = true;
    i++;
  }
  flush();
  return out;
}

/** The command names a shell script calls, in order of appearance, with repeats. */
export function shellCommands(script: string): string[] {
  const subs: string[] = [];
  const tokens = tokenize(script, subs);
  const out: string[] = [];
  let atStart = true;
  let caseState: 'none' | 'word' | 'pattern' = 'none';
  const caseStack: Array<'none' | 'word' | 'pattern'> = [];
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind === 'op') {
      if (t.text === 'redirect') {
        k++; // the target
        continue;
      }
      if (caseState === 'pattern') {
        if (t.text === ')') {
          caseState = 'none';
          atStart = true;
        }
        continue;
      }
      if (t.text === ';;') {
        caseState = 'pattern';
        continue;
      }
      atStart = t.text !== ')';
      continue;
    }
    const w = t.text;
    if (caseState === 'pattern') {
      if (w === 'esac') {
        caseState = caseStack.pop() ?? 'none';
        atStart = false;
      }
      continue;
    }
    if (caseState === 'word') {
      if (w === 'in') caseState = 'pattern';
      continue;
    }
    if (!atStart) continue;
    if (w === 'esac') {
      caseState = caseStack.pop() ?? 'none';
      continue;
    }
    if (w === 'case') {
      caseStack.push(caseState);
      caseState = 'word';
      continue;
    }
    if (w === 'for') {
      // for NAME in WORDS; do: skip to the separator
      while (k + 1 < tokens.length && !(tokens[k + 1].kind === 'op')) k++;
      continue;
    }
    if (KEYWORDS.has(w)) continue;
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue; // an assignment before (or instead of) the command
    // a function definition: name ( ) { ... }
    if (tokens[k + 1]?.text === '(' && tokens[k + 2]?.text === ')') {
      k += 2;
      continue;
    }
    out.push(w);
    atStart = false;
    if (w === 'xargs' || w === 'env' || w === 'nice' || w === 'timeout') {
      // the first word after the options (and, for timeout, the duration) is a command too
      let j = k + 1;
      while (j < tokens.length && tokens[j].kind === 'word' && (tokens[j].text.startsWith('-') || (w === 'env' && tokens[j].text.includes('=')))) j++;
      if (w === 'timeout') j++;
      if (tokens[j]?.kind === 'word') out.push(tokens[j].text);
    }
  }
  for (const sub of subs) out.push(...shellCommands(sub));
  return out;
}

/** The commands a step script needs from its image, builtins and the script's own functions excluded. */
export function scriptCommands(script: string): string[] {
  const shebang = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(script);
  const interpreter = shebang ? shebang[1].split('/').pop()! : 'sh';
  const head = shebang ? [interpreter, ...(interpreter === 'env' && shebang[2] ? [shebang[2]] : [])] : ['sh'];
  const shell = ['sh', 'bash', 'dash'].includes(head[head.length - 1]);
  if (!shell) return [...new Set(head)];
  const all = shellCommands(script);
  const functions = new Set([...script.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{/gm)].map((m) => m[1]));
  return [...new Set([...head, ...all.filter((c) => !SHELL_BUILTINS.has(c) && !functions.has(c))])];
}
