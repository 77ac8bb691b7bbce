// Which Istio meshflow installs: the Istio builds it pins, one per release line, each an istioctl
// and a pilot-discovery built from its own commit of the istio.io/istio module (src/tools/specs.ts
// declares them, side by side in the tool cache). Built from source, istioctl would name the testing
// registry's `latest` images, so meshflow sets the release images itself: hub docker.io/istio, tag =
// the spec's istio.version, a patch release of a pinned line. Pure data: workflow code reads it.

export interface IstioBuild {
  /** The release line, as the module's VERSION file names it. */
  line: string;
  /** The istio.io/istio pseudo-version both commands are built from. */
  module: string;
  /** What the commit is, as checked in the module (VERSION, go.mod): shown by `meshflow doctor`. */
  source: string;
  /** The version stamped into both binaries (`version --short` prints it); part of their cache keys. */
  stamp: string;
  /** The patch release of the line meshflow suggests (the error of a spec naming another line lists it). */
  defaultVersion: string;
  /**
   * A wrapper module under tools/ that builds the commit, for a commit whose go.mod names dependency
   * versions the Go module proxy does not serve: it requires served versions in their place.
   */
  wrapper?: string;
  /** What the wrapper changes, for `meshflow doctor`. */
  substitutes?: string;
}

export const ISTIO_BUILDS: readonly IstioBuild[] = [
  {
    line: '1.30',
    module: 'v0.0.0-20260826214018-9739e10eb9d7',
    source: 'release-1.30 of 2026-08-26, commit 9739e10eb9d7',
    stamp: '1.30-9739e10eb9d7',
    // Its go.mod names pseudo-versions of istio.io/api, istio.io/client-go, go-control-plane and
    // agentgateway's api that the proxy refuses (403): tools/istio-1.30 builds it with served ones.
    wrapper: 'istio-1.30',
    substitutes:
      'istio.io/api and client-go v1.30.8, go-control-plane as in the 1.31 build, agentgateway api of 2026-05-01',
    // istio.io/api v1.30.8 is the newest 1.30 tag the Go module proxy serves (November 2026).
    defaultVersion: '1.30.8',
  },
  {
    line: '1.31',
    module: 'v0.0.0-20260827124520-eed52ebb66ad',
    source: 'release-1.31 of 2026-08-27, commit eed52ebb66ad',
    stamp: '1.31-eed52ebb66ad',
    // istio.io/api v1.31.4 is the newest 1.31 tag the Go module proxy serves (November 2026).
    defaultVersion: '1.31.4',
  },
];

/** The build meshflow uses when a spec names no version (and the one its plain tool names are). */
export const ISTIO_DEFAULT_LINE = '1.31';
export const ISTIO_DEFAULT_VERSION = '1.31.4';
export const ISTIO_HUB = 'docker.io/istio';

/** The pinned lines, oldest first, as messages list them: "1.30, 1.31". */
export const ISTIO_LINES = ISTIO_BUILDS.map((b) => b.line).join(', ');

/** A version meshflow can install: a patch release of a pinned line. */
export const ISTIO_VERSION_PATTERN = new RegExp(
  `^(?:${ISTIO_BUILDS.map((b) => b.line.replace('.', '\\.')).join('|')})\\.\\d+$`,
);

/** The pinned build whose line `version` (a patch release such as 1.30.8) is of; undefined for another line. */
export function istioBuildOf(version: string): IstioBuild | undefined {
  const line = /^(\d+\.\d+)\.\d+$/.exec(version)?.[1];
  return ISTIO_BUILDS.find((b) => b.line === line);
}

/** Istio's observability addons (its samples/addons) a mesh may ask for; shipped beside our istioctl. */
export const ISTIO_ADDONS = ['prometheus', 'grafana', 'jaeger', 'kiali'] as const;
export type IstioAddon = (typeof ISTIO_ADDONS)[number];

/**
 * The control-plane revision an upgrade installs a version as, Istio's way of naming one
 * (istio.io/rev): "1-31-4" for 1.31.4. A mesh made by `up` runs Istio's default revision (none).
 */
export const revisionOf = (version: string): string => version.replace(/\./g, '-');

/** What the revision label of a control plane says: its revision, or "default" when it has none. */
export const revisionLabel = (revision: string | undefined): string => revision ?? 'default';

/** How workloads join a mesh: an Envoy sidecar in each pod, or Istio's ambient data plane (ztunnel, waypoints). */
export const DATA_PLANES = ['sidecar', 'ambient'] as const;
export type DataPlane = (typeof DATA_PLANES)[number];

/** Istio's own word on ambient multicluster, as its docs give it for the pinned lines (1.29 on). */
export const AMBIENT_STATUS = 'ambient multi-network multicluster: Beta since 1.29, multi-primary only';
