package main

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// checkStatic refuses a binary that is not an ELF executable or that asks
// for a dynamic loader or shared libraries: the image has neither.
func checkStatic(name string, data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: not an ELF binary: %w", name, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %w (has an interpreter)", name, ErrNotStatic)
		}
	}
	libs, err := f.ImportedLibraries()
	if err == nil && len(libs) > 0 {
		return fmt.Errorf("%s: %w (needs %v)", name, ErrNotStatic, libs)
	}
	return nil
}
