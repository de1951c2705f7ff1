package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (go build -ldflags "-X main.version=v1.2.3");
// otherwise it comes from the module and VCS data Go stamps into the binary.
var version = ""

// kobsVersion is "<version> (<commit>[-dirty] <commit time>)", from what the
// Go toolchain stamped into the binary.
func kobsVersion() string {
	v, rev, at, dirty := version, "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s %s)", v, rev, at)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the kobs version, commit and Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kobs %s %s %s/%s\n", kobsVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
