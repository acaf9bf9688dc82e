/** The words the backend's thread and its owner share (a SharedArrayBuffer). */
export const C_STOP = 0, C_CONNECTED = 1;
/** Set by the doorbell thread once it left its loop and gave back its mapping. */
export const C_BELL_DONE = 2;
/** Int32 words before the counters (then Float64 counters, in COUNTER_NAMES order). */
export const C_COUNTERS = 4;
export const COUNTER_NAMES = ['txFrames', 'txBytes', 'txDrops', 'rxFrames', 'rxBytes', 'rxDrops'] as const;
export const CTRL_BYTES = 8 * C_COUNTERS + 8 * COUNTER_NAMES.length;
