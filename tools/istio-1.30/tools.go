//go:build tools

// The commands built from this module (`go build <package>`), kept in its module graph.
package tools

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
