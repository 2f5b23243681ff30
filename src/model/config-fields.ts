/**
 * Reading typed fields out of a config.json object, with errors that name the file and the field.
 * Every architecture's parser uses these, so a wrong field reads the same way everywhere.
 */
import { fail } from '../util/errors.ts';

export type Json = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class Fields {
  constructor(
    readonly c: Json,
    readonly path: string,
  ) {}

  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }

  int(key: string, min: number, fallback?: number): number {
    const v = this.c[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      fail(`${this.path}: "${key}" must be an integer >= ${min}, found ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A positive finite number. */
  positive(key: string, fallback?: number): number {
    const v = this.c[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      fail(`${this.path}: "${key}" must be a positive number, found ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') fail(`${this.path}: "${key}" must be true or false, found ${JSON.stringify(v)}`);
    return v;
  }

  choice<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const v = this.c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      fail(`${this.path}: "${key}" ${JSON.stringify(v)} is not supported (carve reads ${choices.join(', ')})`);
    }
    return v as T;
  }

  /** The first of several alternative keys that is present (HF renamed some fields across versions). */
  firstOf(keys: string[]): string | undefined {
    return keys.find((k) => this.has(k));
  }
}
