// Command validate loads a compose file the way `docker compose` does (compose-go, the loader
// docker compose itself uses) and prints what it found, or the loader's error.
//
//	go run . -f docker-compose.yml [-profile demo]
//
// Variables are read from the environment, as docker compose reads them from the shell; a
// `${VAR:?message}` whose variable is unset or empty fails the load, naming the variable. On
// success it prints one line per service, sorted by name:
//
//	service <name> profiles=<a,b> enabled=<true|false>
//
// where a service under a profile that is not enabled is listed with enabled=false.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	file := flag.String("f", "docker-compose.yml", "the compose file")
	profiles := flag.String("profiles", "", "comma-separated profiles to enable (as --profile)")
	flag.Parse()
	if err := run(*file, *profiles); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(file, profiles string) error {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return err
	}
	opts := []cli.ProjectOptionsFn{
		cli.WithOsEnv,
		cli.WithWorkingDirectory(dir),
		cli.WithName("ioc"),
	}
	if profiles != "" {
		opts = append(opts, cli.WithProfiles(strings.Split(profiles, ",")))
	}
	options, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	names := make([]string, 0, len(project.Services)+len(project.DisabledServices))
	found := map[string][]string{}
	enabled := map[string]bool{}
	for name, svc := range project.Services {
		names = append(names, name)
		found[name], enabled[name] = svc.Profiles, true
	}
	for name, svc := range project.DisabledServices {
		names = append(names, name)
		found[name] = svc.Profiles
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("service %s profiles=%s enabled=%t\n", name, strings.Join(found[name], ","), enabled[name])
	}
	return nil
}
