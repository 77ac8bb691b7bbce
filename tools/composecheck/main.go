// composecheck loads a compose file the way Docker Compose v2 does (the compose-spec loader:
// env files, interpolation, validation against the compose spec schema, normalization) and
// prints the normalized project as JSON, or the loader's error and exit status 1.
//
//	composecheck [--env-file FILE]... [--version] COMPOSE_FILE...
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

const loader = "github.com/compose-spec/compose-go/v2"

type envFiles []string

func (e *envFiles) String() string     { return strings.Join(*e, ",") }
func (e *envFiles) Set(v string) error { *e = append(*e, v); return nil }

func main() {
	var files envFiles
	flag.Var(&files, "env-file", "env file to interpolate from (repeatable; the default is .env beside the compose file)")
	version := flag.Bool("version", false, "print the compose-go version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("composecheck compose-go %s\n", loaderVersion())
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [--env-file FILE]... COMPOSE_FILE...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(flag.Args(),
		cli.WithOsEnv,
		cli.WithEnvFiles(files...),
		cli.WithDotEnv,
		cli.WithName("composecheck"),
	)
	if err == nil {
		var project any
		project, err = opts.LoadProject(context.Background())
		if err == nil {
			out := json.NewEncoder(os.Stdout)
			out.SetIndent("", "  ")
			err = out.Encode(project)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// loaderVersion is the compose-go version this binary was built with, from its build info.
func loaderVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == loader {
				return dep.Version
			}
		}
	}
	return "unknown"
}
