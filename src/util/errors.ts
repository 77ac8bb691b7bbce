// Error types every layer shares. Plain classes (no Node APIs), so workflow code may use them too.

/** A failure no retry can fix: the step fails at once, with a message that says what to do. */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** Failure type names the workflow treats as final. */
export const NON_RETRYABLE_TYPES = ['SpecError', 'PermanentError', 'NotOurs', 'ClusterGone'];

/**
 * An object that exists and is not this mesh's: meshflow neither takes it over nor deletes it.
 * Permanent, with the objects named so the user can decide.
 */
export class NotOursError extends PermanentError {
  override name = 'NotOurs';
}

/**
 * A cluster meshflow made (local, GKE) that its provider knows to be deleted: everything that was
 * in it went with it. Never said of a cluster that only cannot be reached.
 */
export class ClusterGoneError extends PermanentError {
  override name = 'ClusterGone';
}
