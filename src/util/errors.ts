/**
 * User errors: anything the user can fix (bad flag, bad file, shape mismatch).
 * The CLI prints these as one `carve: error: ...` line and exits 2, never with a stack trace.
 * Everything else is a bug and keeps its stack.
 */
export class CarveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CarveError';
  }
}

export function fail(message: string): never {
  throw new CarveError(message);
}

export function isCarveError(e: unknown): e is CarveError {
  return e instanceof CarveError;
}

/**
 * A bad option value or combination, raised by library code that knows nothing of the command
 * line: the message names options as `{name}` (the library's option keys, e.g. `{verify}`,
 * `{meanOver}`). `message` reads them as plain names; the CLI shows them as its flags
 * (`--verify`, `--mean-over`) through `render`.
 */
export class OptionError extends CarveError {
  constructor(readonly template: string) {
    super(template.replace(/\{(\w+)\}/g, '$1'));
    this.name = 'OptionError';
  }

  render(flag: (option: string) => string): string {
    return this.template.replace(/\{(\w+)\}/g, (_, name: string) => flag(name));
  }
}

export function failOption(template: string): never {
  throw new OptionError(template);
}

/** The flag of a library option key: camelCase → --kebab-case. */
export function flagOf(option: string): string {
  return `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
