// xloop: the Go peer of bench/xloop.c: two goroutines pass an int back
// and forth through two unbuffered channels, run with GOMAXPROCS=2. Go's
// scheduler runs a goroutine it wakes on the waker's own thread, so the
// plain round trip never crosses threads; the second, with each goroutine
// locked to a thread of its own (runtime.LockOSThread), crosses threads
// at every message, as a message between two of coro's loops does.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func roundTrips(n int, locked bool) float64 {
	to := make(chan int)
	back := make(chan int)
	ready := make(chan bool)
	go func() {
		if locked {
			runtime.LockOSThread()
		}
		ready <- true
		for v := range to {
			back <- v
		}
	}()
	if locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	<-ready
	t0 := time.Now()
	for i := 0; i < n; i++ {
		to <- i
		if <-back != i {
			os.Exit(1)
		}
	}
	ns := float64(time.Since(t0).Nanoseconds()) / float64(n)
	close(to)
	return ns
}

func main() {
	n := 200000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v > 0 {
			n = v
		}
	}
	p := runtime.GOMAXPROCS(0)
	fmt.Printf("go     cross-goroutine round trip, unbuffered chans: %.0f ns (GOMAXPROCS=%d)\n",
		roundTrips(n, false), p)
	fmt.Printf("go     the same, each goroutine on its own thread: %.0f ns (GOMAXPROCS=%d)\n",
		roundTrips(n/4, true), p)
}
