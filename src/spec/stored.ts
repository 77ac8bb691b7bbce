// A field several parts of the spec share, kept apart so provider definitions can use it without
// importing the whole schema (which imports them).
import { z } from 'zod';

/**
 * Where `up` put the content of a file the spec names: an entry (or, for a root CA, the prefix of
 * its entries) in the mesh's trust store. Set by meshflow in the spec a run records, which keeps
 * the file's path for display and none of its content; never written by a user.
 */
export const stored = z
  .string()
  .min(1)
  .optional()
  .describe(
    'set by meshflow in the spec a run records (where up put the file in the trust store); never written by a user',
  );

export const STORED_NOT_YOURS = 'is set by meshflow when it copies the file into the trust store at up; remove it';
