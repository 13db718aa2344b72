// SPDX-License-Identifier: Apache-2.0

// Package conformance runs containerd's own snapshotter conformance suite
// (core/snapshots/testsuite, from Debian's golang-github-containerd-containerd-dev)
// against spin-erofs-snapshotter, through containerd's proxy snapshotter
// client over the daemon's unix socket, as containerd itself talks to it.
//
// Every case gets a daemon of its own on a fresh root. The suite mounts the
// mounts a snapshotter returns on the host; ours are file paths meant for a
// guest (erofs images, an ext4 image), so guest.go stands between the suite
// and the client and does what a VM runtime's guest does with them.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/core/snapshots/testsuite"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The proxy plugin name the daemon serves (requests naming another are refused).
const pluginName = "spin-erofs"

// The suite changes one case by the name it is given: renaming a directory of
// a lower layer (Rename) is left out for "overlayfs", because overlayfs
// without redirect_dir answers EXDEV. Our writable layer is an overlayfs
// upper in the guest, mounted without redirect_dir (a redirect cannot be
// expressed in a layer; Commit refuses one), so the suite's overlayfs
// expectations are the ones that hold for us.
const suiteName = "overlayfs"

func daemonPath(t *testing.T) string {
	p := os.Getenv("SPIN_DAEMON")
	if p == "" {
		t.Fatal("SPIN_DAEMON must name the spin-erofs-snapshotter binary")
	}
	return p
}

// daemon is one spin-erofs-snapshotter serving a test case's root.
type daemon struct {
	cmd  *exec.Cmd
	sock string
	log  string
	done chan error
}

func startDaemon(t *testing.T, bin, root string) (*daemon, error) {
	d := &daemon{
		sock: filepath.Join(root, "spin.sock"),
		log:  filepath.Join(root, "daemon.log"),
		done: make(chan error, 1),
	}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(bin,
		"--root", filepath.Join(root, "data"),
		"--address", d.sock,
		"--containerd-address", filepath.Join(root, "no-containerd.sock"),
		"--snapshotter-name", pluginName,
		"--log-level", "debug",
		"--default-size", "64M")
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("unix", d.sock, time.Second); err == nil {
			c.Close()
			return d, nil
		}
		select {
		case err := <-d.done:
			d.done <- err
			return nil, fmt.Errorf("daemon exited before serving %s: %v\n%s", d.sock, err, d.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("daemon did not serve %s within 20 s\n%s", d.sock, d.logTail())
		}
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	s := string(b)
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// stop sends SIGTERM and waits; a daemon that does not exit cleanly within
// 20 s, or exits with a failure, is an error.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("daemon exit: %v\n%s", err, d.logTail())
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon ignored SIGTERM for 20 s\n%s", d.logTail())
	}
}

func newSnapshotter(t *testing.T) testsuite.SnapshotterFunc {
	bin := daemonPath(t)
	return func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		d, err := startDaemon(t, bin, root)
		if err != nil {
			return nil, nil, err
		}
		conn, err := grpc.NewClient("unix://"+d.sock,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			d.stop()
			return nil, nil, err
		}
		client := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), pluginName)
		g := newGuest(client, filepath.Join(root, "guest"))
		cleanup := func() error {
			errs := []error{g.teardownAll()}
			errs = append(errs, conn.Close())
			errs = append(errs, d.stop())
			errs = append(errs, leftovers(root))
			return errors.Join(errs...)
		}
		return g, cleanup, nil
	}
}

// leftovers names any mount still under root once a case is over: the
// guest side and the daemon must have released everything.
func leftovers(root string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var left []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			left = append(left, f[4])
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("mounts left under %s: %v", root, left)
	}
	return nil
}

func TestConformance(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("the conformance suite mounts file systems: run it as root")
	}
	testsuite.SnapshotterSuite(t, suiteName, newSnapshotter(t))
}
