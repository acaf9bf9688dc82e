/**
 * The library's lower layers as the ports, rings, pipes and memory tests use them: ports, pipes,
 * the event-loop API and the layout, imported directly so that work in progress in other layers
 * (switch, interfaces) cannot break these tests.
 */
import { registerPortTypes } from '../../../src/ports/port.js';
import { pipePortType, parentPortType } from '../../../src/pipes/pipe.js';

registerPortTypes([pipePortType, parentPortType]);
export { openPort, Port, POLLIN, POLLOUT, POLLERR, openHandleCount } from '../../../src/ports/port.js';
export { waitPort, portEvents, pendingWaits } from '../../../src/ports/events.js';
export { NetmapError } from '../../../src/errors.js';
export * as layout from '../../../src/memory/layout.js';
