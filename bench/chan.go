// chan: the Go twin of chan.c: messages through an unbuffered channel.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 2000000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v > 0 {
			n = v
		}
	}
	ch := make(chan int)
	done := make(chan int)
	go func() {
		sum := 0
		for i := 0; i < n; i++ {
			sum += <-ch
		}
		done <- sum
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ch <- i
	}
	<-done
	ns := float64(time.Since(t0).Nanoseconds()) / float64(n)
	fmt.Printf("go     unbuffered channel: %.0f ns per message (GOMAXPROCS=%d)\n",
		ns, runtime.GOMAXPROCS(0))
}
