package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pier-lb/pier/internal/release"
)

// DefaultTag is the image the install manifests name.
const DefaultTag = "ghcr.io/pier-lb/pier:v0.1.0"

// Binaries are the commands the image carries, in /usr/local/bin.
var Binaries = release.ImageCommands

// BinPath is where the binaries live in the image.
const BinPath = "/usr/local/bin"

// NonrootUID is the user the image runs as unless a Pod says otherwise.
const NonrootUID = 65532

// Options says what goes into the image.
type Options struct {
	Tag     string // reference written into the tarball
	Arch    string // GOARCH
	BinDir  string // directory holding the static binaries named in Binaries
	Version string // org.opencontainers.image.version; default the tag's
}

// ErrNotStatic means a binary needs a dynamic loader, which the image lacks.
var ErrNotStatic = errors.New("binary is not statically linked")

// BuildBinaries compiles the commands of the module at root into dir as
// static linux binaries for arch.
func BuildBinaries(root, dir, arch string) error {
	pkgs := make([]string, len(Binaries))
	for i, b := range Binaries {
		pkgs[i] = "./cmd/" + b
	}
	return release.Build(root, dir, arch, pkgs...)
}

// Build assembles the image: one layer with /etc/passwd, /etc/group and the
// binaries on an empty base, user nonroot, no entrypoint. Timestamps are
// fixed, so the same binaries give the same digest.
func Build(o Options) (v1.Image, error) {
	if _, err := name.NewTag(o.Tag); err != nil {
		return nil, fmt.Errorf("tag %q: %w", o.Tag, err)
	}
	if o.Arch == "" || o.BinDir == "" {
		return nil, errors.New("image: arch and binary directory are required")
	}
	layerTar, err := layerTar(o.BinDir)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.User = fmt.Sprintf("%d:%d", NonrootUID, NonrootUID)
	cf.Config.Env = []string{"PATH=" + BinPath + ":/usr/bin:/bin"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "pier",
		"org.opencontainers.image.source":  "https://github.com/pier-lb/pier",
		"org.opencontainers.image.version": version(o),
	}
	return mutate.ConfigFile(img, cf)
}

func version(o Options) string {
	if o.Version != "" {
		return o.Version
	}
	if t, err := name.NewTag(o.Tag); err == nil {
		return t.TagStr()
	}
	return ""
}

const passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
const group = "root:x:0:\nnonroot:x:65532:\n"

// layerTar writes the layer's files: directories, the user database and
// each binary (checked to be a static ELF first).
func layerTar(binDir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dirs := []struct {
		path string
		uid  int
		mode int64
	}{{"etc/", 0, 0o755}, {"home/", 0, 0o755}, {"home/nonroot/", NonrootUID, 0o700},
		{"tmp/", 0, 0o1777}, {"usr/", 0, 0o755}, {"usr/local/", 0, 0o755}, {"usr/local/bin/", 0, 0o755}}
	for _, d := range dirs {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d.path, Mode: d.mode, Uid: d.uid, Gid: d.uid, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	files := []struct {
		path string
		mode int64
		data []byte
	}{{"etc/passwd", 0o644, []byte(passwd)}, {"etc/group", 0o644, []byte(group)}}
	for _, b := range Binaries {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			return nil, err
		}
		if err := checkStatic(b, data); err != nil {
			return nil, err
		}
		files = append(files, struct {
			path string
			mode int64
			data []byte
		}{strings.TrimPrefix(BinPath, "/") + "/" + b, 0o755, data})
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img as a docker-load compatible tarball tagged tag.
func WriteTarball(img v1.Image, tag, path string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, t, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// WriteLayout writes img into an OCI image layout at dir, annotated with
// its reference name.
func WriteLayout(img v1.Image, tag, dir string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	ann := map[string]string{"org.opencontainers.image.ref.name": tag}
	if err := p.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return nil
}
