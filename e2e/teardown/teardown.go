// Package teardown runs registered clean-up functions when the process is
// told to stop (SIGINT, SIGTERM), so that lab namespaces, control-plane
// processes and temporary directories do not outlive an interrupted test or
// demo. Normal shutdown paths call their own clean-up and unregister.
package teardown

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

var (
	mu      sync.Mutex
	next    int
	pending = map[int]func(){}
	once    sync.Once
)

// Register arranges for fn to run if the process receives SIGINT or SIGTERM.
// The returned function unregisters fn; call it once fn has run normally.
func Register(fn func()) (unregister func()) {
	once.Do(watch)
	mu.Lock()
	defer mu.Unlock()
	id := next
	next++
	pending[id] = fn
	return func() {
		mu.Lock()
		defer mu.Unlock()
		delete(pending, id)
	}
}

func watch() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		RunAll()
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
}

// RunAll runs and forgets every registered function, newest first.
func RunAll() {
	mu.Lock()
	fns := make([]func(), 0, len(pending))
	for id := next - 1; id >= 0; id-- {
		if fn, ok := pending[id]; ok {
			fns = append(fns, fn)
		}
	}
	pending = map[int]func(){}
	mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
