// xloop: the Go peer of bench/xloop.c: two goroutines pass an int back
// and forth through two unbuffered channels, run with GOMAXPROCS=2 so
// that each may have a thread of its own, as coro's two loops do.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 200000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v > 0 {
			n = v
		}
	}
	to := make(chan int)
	back := make(chan int)
	go func() {
		for v := range to {
			back <- v
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		to <- i
		if <-back != i {
			os.Exit(1)
		}
	}
	ns := float64(time.Since(t0).Nanoseconds()) / float64(n)
	close(to)
	fmt.Printf("go     cross-goroutine round trip, unbuffered chans: %.0f ns (GOMAXPROCS=%d)\n",
		ns, runtime.GOMAXPROCS(0))
}
