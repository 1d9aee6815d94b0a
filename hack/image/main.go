// Command image builds Pier's container image without a Docker engine or a
// registry: the three static binaries (pier-controller, pier-speaker,
// pier-relay) on an empty base with a nonroot user, written as an image
// tarball that `docker load`, `kind load image-archive` and `ctr images
// import` read, and optionally as an OCI image layout (for skopeo or crane
// to push to a site registry). The image has no entrypoint: the manifests
// name the binary in each container's command.
//
//	go run ./hack/image --tag ghcr.io/pier-lb/pier:v0.1.0 --out bin/pier-image.tar
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
)

func main() {
	var o Options
	flag.StringVar(&o.Tag, "tag", DefaultTag, "image reference written into the tarball")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "GOARCH of the binaries and the image")
	flag.StringVar(&o.BinDir, "bin-dir", "", "take prebuilt static binaries from this directory instead of building them")
	flag.StringVar(&o.Version, "version", "", "version label (default: the tag's)")
	out := flag.String("out", "bin/pier-image.tar", "image tarball to write")
	ociDir := flag.String("oci-layout", "", "also write an OCI image layout into this directory")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, *out, *ociDir, log); err != nil {
		log.Error("image", "err", err)
		os.Exit(1)
	}
}

func run(o Options, out, ociDir string, log *slog.Logger) error {
	if o.BinDir == "" {
		dir, err := os.MkdirTemp("", "pier-image-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		log.Info("building static binaries", "arch", o.Arch)
		if err := BuildBinaries(".", dir, o.Arch); err != nil {
			return err
		}
		o.BinDir = dir
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	if err := WriteTarball(img, o.Tag, out); err != nil {
		return err
	}
	log.Info("wrote image tarball", "path", out, "tag", o.Tag)
	if ociDir != "" {
		if err := WriteLayout(img, o.Tag, ociDir); err != nil {
			return err
		}
		log.Info("wrote OCI layout", "path", ociDir)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d.String())
	return nil
}
