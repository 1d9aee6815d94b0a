package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the real image as `make image` does, with the command
// (built without the race detector: under it, compressing the layer alone
// takes over a minute), reads the tarball and the OCI layout back and runs
// each binary taken out of the layer.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := BuildBinaries("../..", bin, runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	const tag = "registry.example.internal/pier/pier:v9.9.9-test"
	out, oci := filepath.Join(tmp, "pier.tar"), filepath.Join(tmp, "oci")
	digest := runImage(t, tmp, "--tag", tag, "--bin-dir", bin, "--out", out, "--oci-layout", oci)
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(out, &ref)
	if err != nil {
		t.Fatalf("read tarball back under its tag: %v", err)
	}
	if d, err := back.Digest(); err != nil || d.String() != digest {
		t.Errorf("tarball holds %v (%v), the command printed %s", d, err, digest)
	}
	checkConfig(t, back)
	files := extract(t, back, filepath.Join(tmp, "rootfs"))
	want := []string{"etc/group", "etc/passwd", "usr/local/bin/pier-controller", "usr/local/bin/pier-relay", "usr/local/bin/pier-speaker"}
	slices.Sort(files)
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files in the layer (-want +got):\n%s", diff)
	}
	passwd, err := os.ReadFile(filepath.Join(tmp, "rootfs", "etc", "passwd"))
	if err != nil || !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532 entry: %q, %v", passwd, err)
	}
	for _, b := range Binaries {
		runHelp(t, filepath.Join(tmp, "rootfs", "usr", "local", "bin", b))
	}

	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != tag {
		t.Fatalf("OCI layout index: %+v, %v", m, err)
	}
	if m.Manifests[0].Digest.String() != digest {
		t.Errorf("OCI layout holds %s, want %s", m.Manifests[0].Digest, digest)
	}

	// Same binaries, same image: the build is reproducible.
	again := runImage(t, tmp, "--tag", tag, "--bin-dir", bin, "--out", filepath.Join(tmp, "again.tar"))
	if again != digest {
		t.Errorf("second build digest %s, first %s", again, digest)
	}
}

// runImage runs this command, built without the race detector, with args
// and returns the image digest it prints.
func runImage(t *testing.T, tmp string, args ...string) string {
	t.Helper()
	cmdPath := filepath.Join(tmp, "image")
	if _, err := os.Stat(cmdPath); err != nil {
		if out, err := exec.Command("go", "build", "-o", cmdPath, ".").CombinedOutput(); err != nil {
			t.Fatalf("build the image command: %v\n%s", err, out)
		}
	}
	cmd := exec.Command(cmdPath, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("image %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func checkConfig(t *testing.T, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		OS, Arch, User string
		Env, Entry     []string
		Cmd            []string
	}{cf.OS, cf.Architecture, cf.Config.User, cf.Config.Env, cf.Config.Entrypoint, cf.Config.Cmd}
	want := got
	want.OS, want.Arch, want.User = "linux", runtime.GOARCH, "65532:65532"
	want.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	want.Entry, want.Cmd = nil, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("image config (-want +got):\n%s", diff)
	}
	if v := cf.Config.Labels["org.opencontainers.image.version"]; v != "v9.9.9-test" {
		t.Errorf("version label %q", v)
	}
}

// extract unpacks the image's filesystem into dir and lists its regular files.
func extract(t *testing.T, img v1.Image, dir string) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var files []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if h.Uid != 0 {
				t.Errorf("%s owned by %d, want root (the nonroot user must not replace binaries)", h.Name, h.Uid)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
			files = append(files, h.Name)
		default:
			t.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
	}
	return files
}

// runHelp runs the binary with --help in an empty environment: a static
// binary starts without any library; flag's --help exits 0.
func runHelp(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(filepath.Base(path), data); err != nil {
		t.Error(err)
	}
	cmd := exec.Command(path, "--help")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) {
		t.Errorf("%s --help: %v\n%s", filepath.Base(path), err, out)
	}
	if !strings.Contains(string(out), "-metrics-addr") {
		t.Errorf("%s --help does not list its flags:\n%s", filepath.Base(path), out)
	}
}

// TestCheckStaticRefusesDynamic uses a dynamically linked program of the
// host (any will do) and a file that is not ELF.
func TestCheckStaticRefusesDynamic(t *testing.T) {
	if err := checkStatic("text", []byte("#!/bin/sh\n")); err == nil {
		t.Error("a shell script passed as a static binary")
	}
	for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/sh"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if err := checkStatic(p, data); !errors.Is(err, ErrNotStatic) {
			t.Errorf("%s: err %v, want ErrNotStatic", p, err)
		}
		return
	}
	t.Skip("no dynamically linked program found on this host")
}

func TestBuildRefusesBadTag(t *testing.T) {
	if _, err := Build(Options{Tag: "Not A Tag", Arch: "amd64", BinDir: t.TempDir()}); err == nil {
		t.Error("bad tag accepted")
	}
}
