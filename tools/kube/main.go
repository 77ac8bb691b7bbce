// Command meshflow-kube is a real kube-apiserver and a real etcd in one binary, built from the
// published Kubernetes and etcd Go modules. Like busybox it acts on the name it is run by, so the
// meshflow installer links `kube-apiserver` and `etcd` to it and the tool directory has the same
// shape as a KUBEBUILDER_ASSETS directory. meshflow runs one etcd for all local clusters; each
// apiserver keeps its data under its own --etcd-prefix.
//
//	kube-apiserver [flags]          (or: meshflow-kube apiserver [flags])
//	etcd [flags]                    (or: meshflow-kube etcd [flags])
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	role, args := filepath.Base(os.Args[0]), os.Args[1:]
	if role == "meshflow-kube" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: meshflow-kube apiserver|etcd [flags]")
			os.Exit(2)
		}
		role, args = args[0], args[1:]
	}
	switch role {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver", "apiserver":
		cmd := app.NewAPIServerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	default:
		fmt.Fprintf(os.Stderr, "meshflow-kube: unknown role %q (want apiserver or etcd)\n", role)
		os.Exit(2)
	}
}
