/**
 * Errors of netmap-ts. Every failure the library reports is a NetmapError carrying the errno
 * name netmap itself would return (EINVAL, ENXIO, EBUSY, ...) and a sentence saying what was wrong.
 * Bad input never throws anything else.
 */

/** errno values as on Linux; the names are what callers match on. */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, EIO: 5, ENXIO: 6, E2BIG: 7, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14,
  EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EINVAL: 22, ENOSPC: 28, ERANGE: 34, ENOBUFS: 105,
  EOPNOTSUPP: 95, EMSGSIZE: 90, ETIMEDOUT: 110, ESRCH: 3, EPROTO: 71, ENOTSUP: 95,
  EAFNOSUPPORT: 97, EADDRINUSE: 98,
} as const;

export type ErrnoName = keyof typeof ERRNO;

export class NetmapError extends Error {
  /** errno name, e.g. 'EINVAL'. */
  readonly code: ErrnoName;
  /** numeric errno, e.g. 22. */
  readonly errno: number;
  constructor(code: ErrnoName, message: string) {
    super(`${message} (${code})`);
    this.name = 'NetmapError';
    this.code = code;
    this.errno = ERRNO[code];
  }
}

/** Throws a NetmapError; shorthand that keeps call sites to one line. */
export function fail(code: ErrnoName, message: string): never {
  throw new NetmapError(code, message);
}

/** Invariant check (TigerBeetle style): a false condition is a bug in netmap-ts, not bad input. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new Error(`netmap-ts internal invariant violated: ${message}`);
}

/** Maps a numeric errno (from a failed native call) back to its name, EIO when unknown. */
export function errnoName(errno: number): ErrnoName {
  for (const [name, value] of Object.entries(ERRNO)) if (value === errno) return name as ErrnoName;
  return 'EIO';
}
