import * as kplus from 'cdk8s-plus-28';

/**
 * The type of a Tekton param or result.
 */
export enum ParamType {
  /** A string (the default). */
  STRING = 'string',
  /** A list of strings. */
  ARRAY = 'array',
  /** A map of string keys to string values, with declared keys. */
  OBJECT = 'object',
}

/**
 * Options for `addParam()` on a Task or a Pipeline.
 */
export interface ParamOptions {
  /**
   * The param's type.
   *
   * @default ParamType.STRING
   */
  readonly type?: ParamType;

  /**
   * What the param is for; shown by Tekton's tooling.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * The value used when the param is not given. A param without a default is required.
   *
   * @default - required param
   */
  readonly default?: ParamValue;

  /**
   * For an object param: its keys. Each key holds a string.
   *
   * @default - none (required for ParamType.OBJECT)
   */
  readonly properties?: string[];

  /**
   * For a string param: the values it may take. Tekton rejects a run that passes
   * anything else.
   *
   * @default - any value
   */
  readonly enum?: string[];
}

const PARAM_NAME = /^[a-zA-Z_][a-zA-Z0-9_.-]*$/;

/**
 * A param declared by a Task or a Pipeline.
 *
 * Get one from `task.addParam()` or `pipeline.addParam()`; use `reference` (or
 * `envValue()` to hand it to a step script) instead of typing `$(params.x)`.
 */
export class Param {
  /**
   * Throws unless `name` is a valid Tekton param name.
   *
   * @internal
   */
  public static _validateName(owner: string, name: string): void {
    if (!PARAM_NAME.test(name)) {
      throw new Error(`${owner}: param name "${name}" is invalid: start with a letter or '_', then use letters, digits, '_', '-' or '.'`);
    }
  }

  /** The param's name. */
  public readonly name: string;
  /** The param's type. */
  public readonly type: ParamType;
  /** The description, if any. */
  public readonly description?: string;
  /** The default value; a param without one is required. */
  public readonly default?: ParamValue;
  private readonly _properties?: string[];
  private readonly _enum?: string[];

  /** @internal */
  constructor(owner: string, name: string, options: ParamOptions = {}) {
    Param._validateName(owner, name);
    const type = options.type ?? ParamType.STRING;
    if (type === ParamType.OBJECT && (options.properties ?? []).length === 0) {
      throw new Error(`${owner}: object param "${name}" has no properties: pass properties: ['key', ...]`);
    }
    if (type !== ParamType.OBJECT && options.properties) {
      throw new Error(`${owner}: param "${name}" has properties but is of type ${type}: properties are for ParamType.OBJECT`);
    }
    if (options.enum && type !== ParamType.STRING) {
      throw new Error(`${owner}: param "${name}" has enum values but is of type ${type}: enum is for string params`);
    }
    if (options.default && options.default.type !== type) {
      throw new Error(`${owner}: param "${name}" is of type ${type} but its default is of type ${options.default.type}`);
    }
    if (options.default && options.enum && !options.enum.includes(options.default.value as string)) {
      throw new Error(`${owner}: param "${name}" default "${options.default.value}" is not one of its enum values ${JSON.stringify(options.enum)}`);
    }
    if (type === ParamType.OBJECT && options.default) {
      const keys = Object.keys(options.default.value as object);
      const missing = (options.properties ?? []).filter((k) => !keys.includes(k));
      if (missing.length > 0) {
        throw new Error(`${owner}: default of object param "${name}" lacks keys ${JSON.stringify(missing)}`);
      }
    }
    this.name = name;
    this.type = type;
    this.description = options.description;
    this.default = options.default;
    this._properties = options.properties ? [...options.properties] : undefined;
    this._enum = options.enum ? [...options.enum] : undefined;
  }

  /** True when the param has no default, so it must be given. */
  public get required(): boolean {
    return this.default === undefined;
  }

  /** The keys of an object param. */
  public get properties(): string[] {
    return [...(this._properties ?? [])];
  }

  /** The allowed values of a string param, if restricted. */
  public get enum(): string[] | undefined {
    return this._enum ? [...this._enum] : undefined;
  }

  /**
   * The Tekton variable for this param's value, e.g. `$(params.model-repo)`.
   *
   * For an array or object param this is the whole-value form `$(params.x[*])`, which
   * Tekton expands in place in `args`, `command` and param values.
   */
  public get reference(): string {
    const base = this.name.includes('.') ? `params["${this.name}"]` : `params.${this.name}`;
    return this.type === ParamType.STRING ? `$(${base})` : `$(${base}[*])`;
  }

  /**
   * The Tekton variable for one key of an object param, e.g. `$(params.target.url)`.
   */
  public key(key: string): string {
    if (this.type !== ParamType.OBJECT) {
      throw new Error(`param "${this.name}" is of type ${this.type}: key("${key}") is for object params`);
    }
    if (!this.properties.includes(key)) {
      throw new Error(`object param "${this.name}" has no key "${key}": its keys are ${JSON.stringify(this.properties)}`);
    }
    return `$(params.${this.name}.${key})`;
  }

  /**
   * An env value that carries this param into a step. This is how a param reaches a
   * script: Tekton substitutes the env value, and the script reads `"$NAME"`, so no
   * param text is ever parsed as shell.
   */
  public envValue(): kplus.EnvValue {
    if (this.type === ParamType.ARRAY) {
      throw new Error(`param "${this.name}" is an array: an env var holds one string; pass it through args instead`);
    }
    if (this.type === ParamType.OBJECT) {
      throw new Error(`param "${this.name}" is an object: pass one key with EnvValue.fromValue(param.key('k'))`);
    }
    return kplus.EnvValue.fromValue(this.reference);
  }

  /** A value for another param (of a pipeline task, say) that forwards this param. */
  public toParamValue(): ParamValue {
    switch (this.type) {
      case ParamType.ARRAY: return ParamValue.array([this.reference]);
      case ParamType.OBJECT: return ParamValue._raw(ParamType.OBJECT, this.reference);
      default: return ParamValue.string(this.reference);
    }
  }

  /** @internal */
  public _toSpec(): any {
    return {
      name: this.name,
      type: this.type,
      description: this.description,
      default: this.default?.value,
      properties: this._properties
        ? Object.fromEntries(this._properties.map((p) => [p, { type: 'string' }]))
        : undefined,
      enum: this._enum,
    };
  }
}

/**
 * A value given to a param: by a pipeline task, by a PipelineRun, or as a default.
 */
export class ParamValue {
  /** A string value. It may contain Tekton variables from `Param.reference` and the like. */
  public static string(value: string): ParamValue {
    return new ParamValue(ParamType.STRING, value);
  }

  /** An array value. */
  public static array(values: string[]): ParamValue {
    return new ParamValue(ParamType.ARRAY, [...values]);
  }

  /** An object value. */
  public static object(values: { [key: string]: string }): ParamValue {
    return new ParamValue(ParamType.OBJECT, { ...values });
  }

  /** @internal */
  public static _raw(type: ParamType, value: any): ParamValue {
    return new ParamValue(type, value);
  }

  /** The type of the value. */
  public readonly type: ParamType;
  /** The value as it is written into the manifest. */
  public readonly value: any;

  private constructor(type: ParamType, value: any) {
    this.type = type;
    this.value = value;
  }

  /** Every string in the value (to scan for variables). @internal */
  public _strings(): string[] {
    if (typeof this.value === 'string') return [this.value];
    if (Array.isArray(this.value)) return [...this.value];
    return Object.values(this.value as Record<string, string>);
  }
}
