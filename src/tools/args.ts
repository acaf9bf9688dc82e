/**
 * Small helpers shared by the tools' argument parsers: every bad argument becomes an EINVAL
 * NetmapError whose message names the option and ends with the tool's usage text.
 */
import { NetmapError } from '../errors.js';

export interface ArgHelpers {
  /** Fails with `msg` followed by the usage text. */
  bad(msg: string): never;
  /** Parses the value of option `what` as a number in [min, max]. */
  num(v: string | undefined, what: string, min: number, max: number): number;
}

export function argHelpers(usage: string): ArgHelpers {
  const bad = (msg: string): never => {
    throw new NetmapError('EINVAL', `${msg}\n${usage}`);
  };
  const num = (v: string | undefined, what: string, min: number, max: number): number => {
    if (v === undefined) bad(`option ${what} needs a value`);
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) bad(`${what} must be a number in [${min}, ${max}], not '${v}'`);
    return n;
  };
  return { bad, num };
}
