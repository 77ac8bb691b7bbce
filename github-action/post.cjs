// The action's post step (post-if: always(), so also after a failure or a cancel): tears down the
// mesh main started, and waits until it is gone. Nothing to do when main did not get as far as
// naming a mesh, or when the mesh has already ended.
const { input, info, meshflow, notice, runStep, state, temporalEnv } = require('./lib.cjs');

runStep(() => {
  const mesh = state('mesh');
  if (!mesh) return info('no mesh to tear down: the main step did not get as far as starting one');
  if ((input('teardown') || 'true') === 'false') return notice(`mesh ${mesh} is left running (input teardown: false)`);
  try {
    meshflow(['down', mesh, '--wait'], { env: temporalEnv() });
  } catch (err) {
    // A mesh that never started, or that has already ended (failed and compensated), has nothing left.
    if (/no such mesh|already completed|not found/i.test(err.message)) {
      return info(`mesh ${mesh}: nothing to tear down (${err.message})`);
    }
    throw err;
  }
  info(`mesh ${mesh} is torn down`);
});
