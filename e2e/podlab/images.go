package podlab

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pier-lb/pier/internal/release"
)

// Images the lab pushes, as repository paths in its registry.
const (
	// LabImage holds pause (the sandbox image's entrypoint) and pier-lab
	// (the calling-server stand-ins: pier-lab echo).
	LabImage = "pier-lab/tools:lab"
	// PierRepository is where the chart's image goes: image.registry is the
	// lab registry, image.repository this.
	PierRepository = "pier-lb/pier"
)

// buildImageInputs builds, in one go build, every binary the lab's images
// hold (pause, pier-lab, Pier's commands) and the image command into dir.
func buildImageInputs(root, dir string) error {
	pkgs := []string{"./e2e/podlab/pause", "./cmd/pier-lab", "./hack/image"}
	for _, c := range release.ImageCommands {
		pkgs = append(pkgs, "./cmd/"+c)
	}
	return release.Build(root, dir, "", pkgs...)
}

// pushLabImage pushes pause and pier-lab, built into bin, as LabImage.
func pushLabImage(bin, registry string) error {
	layer, err := filesLayer(bin, "pause", "pier-lab")
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/pause"}, WorkingDir: "/"})
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return push(img, registry+"/"+LabImage)
}

// PushBinaryImage pushes an image holding only the static binary at path,
// as its entrypoint, to repoTag ("gateway-api/echo-basic:lab") of the lab
// registry, and returns the reference nodes pull it by.
func (e *Env) PushBinaryImage(path, repoTag string) (string, error) {
	layer, err := filesLayer(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"/" + filepath.Base(path)}, WorkingDir: "/"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	if err := push(img, e.PushRegistry+"/"+repoTag); err != nil {
		return "", err
	}
	return e.Registry + "/" + repoTag, nil
}

// filesLayer is one layer with the named files of dir at /, executable.
func filesLayer(dir string, files ...string) (v1.Layer, error) {
	tmp := filepath.Join(dir, "layer.tar")
	args := append([]string{"-C", dir, "--owner=0", "--group=0", "--mode=0755", "-cf", tmp}, files...)
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tar: %w: %s", err, out)
	}
	return tarball.LayerFromFile(tmp)
}

// pushPierImage makes Pier's image exactly as `make image` does (a tarball
// from hack/image, here from the binaries built into bin) and pushes it as
// PierRepository:tag.
func pushPierImage(bin, work, registry, tag string) error {
	tar := filepath.Join(work, "pier-image-"+tag+".tar")
	ref := registry + "/" + PierRepository + ":" + tag
	cmd := exec.Command(filepath.Join(bin, "image"), "--tag", ref, "--out", tar, "--version", tag, "--bin-dir", bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make image: %w\n%s", err, out)
	}
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := tarball.ImageFromPath(tar, &t)
	if err != nil {
		return fmt.Errorf("read %s: %w", tar, err)
	}
	return push(img, ref)
}

func push(img v1.Image, ref string) error {
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(t, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
