// Which Istio meshflow installs. The pinned istioctl (src/tools/specs.ts) is built from a commit
// of the 1.31 line and renders that line's charts; built from source it would name the testing
// registry's `latest` images, so meshflow sets the release images itself: hub docker.io/istio,
// tag = the spec's istio.version, a 1.31 patch release (istio.io/api v1.31.4 is the newest on
// the Go module proxy as of November 2026).
export const ISTIO_LINE = '1.31';
export const ISTIO_DEFAULT_VERSION = '1.31.4';
export const ISTIO_HUB = 'docker.io/istio';

/** A version this build can install: a patch release of its line. */
export const ISTIO_VERSION_PATTERN = /^1\.31\.\d+$/;

/** Istio's observability addons (its samples/addons) a mesh may ask for; shipped beside our istioctl. */
export const ISTIO_ADDONS = ['prometheus', 'grafana', 'jaeger', 'kiali'] as const;
export type IstioAddon = (typeof ISTIO_ADDONS)[number];
