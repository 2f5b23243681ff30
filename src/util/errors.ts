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
