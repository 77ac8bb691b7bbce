// The task queue every meshflow worker polls for mesh workflows (a host's own queue, for the steps
// that need its disk, is `meshflow@<host>`: see activities/host.ts).
export const TASK_QUEUE = 'meshflow';
