import * as kplus from 'cdk8s-plus-28';
import { ParamType } from './params';

/**
 * Options for `Task.addResult()`.
 */
export interface ResultOptions {
  /**
   * The result's type. Array and object results are written as JSON.
   *
   * @default ParamType.STRING
   */
  readonly type?: ParamType;

  /**
   * What the result holds.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * For an object result: its keys.
   *
   * @default - none (required for ParamType.OBJECT)
   */
  readonly properties?: string[];
}

const RESULT_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/**
 * A result a Task declares: a small value (at most 4 KiB) a step writes to a file and
 * Tekton hands to later tasks.
 */
export class Result {
  /** The result's name. */
  public readonly name: string;
  /** The result's type. */
  public readonly type: ParamType;
  /** The description, if any. */
  public readonly description?: string;
  private readonly _properties?: string[];

  /** @internal */
  constructor(owner: string, name: string, options: ResultOptions = {}) {
    if (!RESULT_NAME.test(name)) {
      throw new Error(`${owner}: result name "${name}" is invalid: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit`);
    }
    const type = options.type ?? ParamType.STRING;
    if (type === ParamType.OBJECT && (options.properties ?? []).length === 0) {
      throw new Error(`${owner}: object result "${name}" has no properties: pass properties: ['key', ...]`);
    }
    this.name = name;
    this.type = type;
    this.description = options.description;
    this._properties = options.properties ? [...options.properties] : undefined;
  }

  /**
   * The Tekton variable for the file a step writes this result to:
   * `$(results.name.path)`.
   */
  public get path(): string {
    return `$(results.${this.name}.path)`;
  }

  /**
   * An env value holding the result file's path, for a step script to write to.
   */
  public pathEnvValue(): kplus.EnvValue {
    return kplus.EnvValue.fromValue(this.path);
  }

  /** @internal */
  public _toSpec(): any {
    return {
      name: this.name,
      type: this.type,
      description: this.description,
      properties: this._properties
        ? Object.fromEntries(this._properties.map((p) => [p, { type: 'string' }]))
        : undefined,
    };
  }
}
