// Command meshflow-kube is a real Kubernetes control plane in one binary: kube-apiserver,
// kube-controller-manager, kube-scheduler and etcd, built from the published Kubernetes and etcd
// Go modules. Like busybox it acts on the name it is run by, so the meshflow installer links
// `kube-apiserver`, `kube-controller-manager`, `kube-scheduler` and `etcd` to it and the tool
// directory has the shape of a KUBEBUILDER_ASSETS directory. meshflow runs one etcd for all local
// clusters; each apiserver keeps its data under its own --etcd-prefix, and each cluster gets its
// own controller manager and scheduler.
//
//	kube-apiserver [flags]            (or: meshflow-kube apiserver [flags])
//	kube-controller-manager [flags]   (or: meshflow-kube controller-manager [flags])
//	kube-scheduler [flags]            (or: meshflow-kube scheduler [flags])
//	etcd [flags]                      (or: meshflow-kube etcd [flags])
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	role, args := filepath.Base(os.Args[0]), os.Args[1:]
	if role == "meshflow-kube" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: meshflow-kube apiserver|controller-manager|scheduler|etcd [flags]")
			os.Exit(2)
		}
		role, args = args[0], args[1:]
	}
	var cmd *cobra.Command
	switch role {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
		return
	case "kube-apiserver", "apiserver":
		cmd = apiserver.NewAPIServerCommand()
	case "kube-controller-manager", "controller-manager":
		cmd = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler", "scheduler":
		cmd = scheduler.NewSchedulerCommand()
	default:
		fmt.Fprintf(os.Stderr, "meshflow-kube: unknown role %q (want apiserver, controller-manager, scheduler or etcd)\n", role)
		os.Exit(2)
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}
