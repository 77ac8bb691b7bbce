// What the action's main and post steps share: inputs (INPUT_<NAME>), outputs (GITHUB_OUTPUT),
// state passed from main to post (GITHUB_STATE, read back as STATE_<name>), workflow commands, and
// running the meshflow CLI of this action's checkout. Plain CommonJS on Node's own modules: the
// runner starts it before any dependency is installed.
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = process.env.GITHUB_ACTION_PATH || path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');

/** An input as the runner passes it: INPUT_ + the name upper-cased, spaces as underscores. */
function input(name) {
  return (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '').trim();
}

/** A name=value line (or a heredoc for several lines) in a file the runner reads after the step. */
function appendKeyValue(file, name, value) {
  if (!file) throw new Error(`cannot set ${name}: the runner gave no file for it (GITHUB_OUTPUT / GITHUB_STATE)`);
  const text = String(value);
  const delimiter = `meshflow_${crypto.randomBytes(8).toString('hex')}`;
  fs.appendFileSync(file, text.includes('\n') ? `${name}<<${delimiter}\n${text}\n${delimiter}\n` : `${name}=${text}\n`);
}

const setOutput = (name, value) => appendKeyValue(process.env.GITHUB_OUTPUT, name, value);
const saveState = (name, value) => appendKeyValue(process.env.GITHUB_STATE, name, value);
const state = (name) => process.env[`STATE_${name}`] || '';

/** Workflow command data escaping (%, CR, LF), so a message stays one annotation. */
const escapeData = (s) => String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const error = (message) => process.stdout.write(`::error::${escapeData(message)}\n`);
const notice = (message) => process.stdout.write(`::notice::${escapeData(message)}\n`);
const info = (line) => process.stdout.write(`${line}\n`);

/** Masks a secret in the log, line by line (a PEM key has many). */
function mask(secret) {
  for (const line of secret.split('\n')) if (line.trim()) process.stdout.write(`::add-mask::${line.trim()}\n`);
}

/**
 * The environment the meshflow CLI reads Temporal's settings from (src/temporal/connection-options.ts),
 * built from the action's inputs; secrets are masked first.
 */
function temporalEnv() {
  const env = {};
  const set = (name, value) => value && (env[name] = value);
  set('TEMPORAL_ADDRESS', input('temporal-address'));
  set('TEMPORAL_NAMESPACE', input('temporal-namespace'));
  for (const secret of [input('temporal-api-key'), input('temporal-tls-key')]) if (secret) mask(secret);
  set('TEMPORAL_API_KEY', input('temporal-api-key'));
  set('TEMPORAL_TLS_SERVER_CA_CERT_DATA', input('temporal-tls-ca'));
  set('TEMPORAL_TLS_CLIENT_CERT_DATA', input('temporal-tls-cert'));
  set('TEMPORAL_TLS_CLIENT_KEY_DATA', input('temporal-tls-key'));
  set('TEMPORAL_TLS_SERVER_NAME', input('temporal-tls-server-name'));
  return { ...process.env, ...env };
}

/**
 * Runs `meshflow ARGS` and returns its stdout (printed to the log too unless `quiet`). A failure
 * throws the CLI's own message (its `meshflow: ...` line), so the annotation says what went wrong.
 * `live`: the output goes to the log as it comes (`up` runs for minutes), and is not returned.
 */
function meshflow(args, { env, quiet = false, live = false } = {}) {
  info(`$ meshflow ${args.join(' ')}`);
  const stdio = live ? 'inherit' : ['ignore', 'pipe', 'pipe'];
  const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', stdio, maxBuffer: 256 << 20 });
  if (!quiet && r.stdout) process.stdout.write(r.stdout);
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.error) throw new Error(`meshflow ${args[0]} could not run: ${r.error.message}`);
  if (r.status !== 0) {
    // The CLI's message starts with `meshflow: ` and may go on for lines (each problem of a spec).
    const stderr = r.stderr || '';
    const at = stderr.lastIndexOf('meshflow: ');
    const why = at >= 0 ? stderr.slice(at + 'meshflow: '.length).trim() : `exit ${r.status ?? r.signal}`;
    throw new Error(`meshflow ${args[0]} failed: ${why}`);
  }
  return r.stdout;
}

/** Runs a step's body: any error becomes one `::error::` line and a failed step. */
function runStep(body) {
  try {
    body();
  } catch (err) {
    error(err.message);
    process.exitCode = 1;
  }
}

module.exports = { root, cli, input, setOutput, saveState, state, error, notice, info, temporalEnv, meshflow, runStep };
