// SPDX-License-Identifier: Apache-2.0

package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"golang.org/x/sys/unix"
)

// guest does with the daemon's mounts what a VM runtime's guest does with
// the disks they name (README, "What VM runtimes get"): every erofs image
// (with its device= blobs) is attached to a loop device as the runtime's
// virtio disks would be and mounted read-only; the ext4 rwlayer.img is
// mounted read-write; the suite then gets one mount of the root the guest
// would show: an overlay of the erofs lowers with the ext4's upper/ and
// work/, a bind of upper/ when there is no lower, a read-only bind of the
// erofs root for a view.
//
// Before Commit and Remove the guest is shut down as a VM's would be: the
// ext4 is synced (syncfs) and everything it mounted is unmounted, so the
// daemon reads a consistent rwlayer.img and no loop device stays attached
// (each is set up with autoclear).
type guest struct {
	snapshots.Snapshotter
	dir string

	mu     sync.Mutex
	seq    int
	staged map[string]*stage
}

type stage struct {
	dir    string
	points []string // what the guest mounted, in mount order
	rw     string   // the ext4's mount point, or ""
	image  string   // the ext4 image (rwlayer.img), or ""
	out    []mount.Mount
}

func newGuest(inner snapshots.Snapshotter, dir string) *guest {
	return &guest{Snapshotter: inner, dir: dir, staged: map[string]*stage{}}
}

func (g *guest) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	ms, err := g.Snapshotter.Prepare(ctx, key, parent, opts...)
	if err != nil {
		return nil, err
	}
	return g.boot(key, ms)
}

func (g *guest) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	ms, err := g.Snapshotter.View(ctx, key, parent, opts...)
	if err != nil {
		return nil, err
	}
	return g.boot(key, ms)
}

func (g *guest) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	ms, err := g.Snapshotter.Mounts(ctx, key)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	s := g.staged[key]
	g.mu.Unlock()
	if s != nil {
		return s.out, nil
	}
	return g.boot(key, ms)
}

func (g *guest) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	image, err := g.shutdown(key)
	if err != nil {
		return err
	}
	if image != "" {
		if err := releaseDisk(image); err != nil {
			return err
		}
	}
	return g.Snapshotter.Commit(ctx, name, key, opts...)
}

func (g *guest) Remove(ctx context.Context, key string) error {
	if _, err := g.shutdown(key); err != nil {
		return err
	}
	return g.Snapshotter.Remove(ctx, key)
}

// boot mounts what ms names and answers the one mount of the guest's root.
func (g *guest) boot(key string, ms []mount.Mount) ([]mount.Mount, error) {
	var lowers []mount.Mount
	var upper *mount.Mount
	for i := range ms {
		switch ms[i].Type {
		case "erofs":
			if upper != nil {
				return nil, fmt.Errorf("mounts of %q: erofs after ext4: %v", key, ms)
			}
			lowers = append(lowers, ms[i])
		case "ext4":
			if upper != nil {
				return nil, fmt.Errorf("mounts of %q: two ext4 mounts: %v", key, ms)
			}
			upper = &ms[i]
		default:
			// A view with nothing below is a read-only bind of an empty
			// directory: nothing for a guest to attach.
			if len(ms) == 1 && ms[0].Type == "bind" {
				return ms, nil
			}
			return nil, fmt.Errorf("mounts of %q: unexpected %s mount: %v", key, ms[i].Type, ms)
		}
	}
	if len(lowers) == 0 && upper == nil {
		return nil, fmt.Errorf("mounts of %q: none", key)
	}

	g.mu.Lock()
	if g.staged[key] != nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("%q is already booted", key)
	}
	g.seq++
	s := &stage{dir: filepath.Join(g.dir, fmt.Sprint(g.seq))}
	g.staged[key] = s
	g.mu.Unlock()

	out, err := s.mountAll(lowers, upper)
	if err != nil {
		err = errors.Join(fmt.Errorf("booting %q: %w", key, err), s.unmountAll())
		g.mu.Lock()
		delete(g.staged, key)
		g.mu.Unlock()
		return nil, err
	}
	s.out = out
	return out, nil
}

func (s *stage) mountAll(lowers []mount.Mount, upper *mount.Mount) ([]mount.Mount, error) {
	var lowerDirs []string
	for i, m := range lowers {
		p := filepath.Join(s.dir, fmt.Sprintf("lower%d", i))
		if err := s.mountDisk(m, p, true); err != nil {
			return nil, err
		}
		lowerDirs = append(lowerDirs, p)
	}
	// overlayfs lists the topmost lower first; ours come oldest first.
	for i, j := 0, len(lowerDirs)-1; i < j; i, j = i+1, j-1 {
		lowerDirs[i], lowerDirs[j] = lowerDirs[j], lowerDirs[i]
	}
	if upper == nil {
		if len(lowerDirs) == 1 {
			return []mount.Mount{{Type: "bind", Source: lowerDirs[0], Options: []string{"rbind", "ro"}}}, nil
		}
		return []mount.Mount{{Type: "overlay", Source: "overlay",
			Options: []string{"lowerdir=" + strings.Join(lowerDirs, ":")}}}, nil
	}

	p := filepath.Join(s.dir, "rw")
	if err := s.mountDisk(*upper, p, false); err != nil {
		return nil, err
	}
	s.rw = p
	s.image = upper.Source
	for _, d := range []string{"upper", "work"} {
		if st, err := os.Stat(filepath.Join(p, d)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s has no %s/ directory at its root", upper.Source, d)
		}
	}
	if len(lowerDirs) == 0 {
		return []mount.Mount{{Type: "bind", Source: filepath.Join(p, "upper"), Options: []string{"rbind", "rw"}}}, nil
	}
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + strings.Join(lowerDirs, ":"),
		"upperdir=" + filepath.Join(p, "upper"),
		"workdir=" + filepath.Join(p, "work"),
		// A redirect cannot be expressed in a layer: the guest's overlay
		// must not make one (Commit refuses an upper that has one).
		"redirect_dir=off",
	}}}, nil
}

// mountDisk attaches m's image (and every device= image) to loop devices and
// mounts it at p, as a guest mounts its virtio disks.
func (s *stage) mountDisk(m mount.Mount, p string, ro bool) error {
	if err := os.MkdirAll(p, 0o700); err != nil {
		return err
	}
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	attach := func(path string) (string, error) {
		f, err := loopAttach(path, ro)
		if err != nil {
			return "", err
		}
		held = append(held, f)
		return f.Name(), nil
	}

	var flags uintptr
	var data []string
	loop := false
	for _, o := range m.Options {
		switch {
		case o == "ro":
			flags |= unix.MS_RDONLY
		case o == "rw":
		case o == "loop":
			loop = true
		case strings.HasPrefix(o, "device="):
			dev, err := attach(strings.TrimPrefix(o, "device="))
			if err != nil {
				return err
			}
			data = append(data, "device="+dev)
		default:
			data = append(data, o)
		}
	}
	if ro != (flags&unix.MS_RDONLY != 0) {
		return fmt.Errorf("%s mount of %s: expected it %s, options %v", m.Type, m.Source, map[bool]string{true: "ro", false: "rw"}[ro], m.Options)
	}
	if !loop {
		return fmt.Errorf("%s mount of %s has no loop option: %v", m.Type, m.Source, m.Options)
	}
	src, err := attach(m.Source)
	if err != nil {
		return err
	}
	if err := unix.Mount(src, p, m.Type, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount -t %s %s (%s) %s -o %s: %w", m.Type, m.Source, src, p, strings.Join(data, ","), err)
	}
	s.points = append(s.points, p)
	return nil
}

// loopAttach binds path to a free loop device with autoclear: the device
// goes away once the returned file and every mount of it are closed.
func loopAttach(path string, ro bool) (*os.File, error) {
	mode := os.O_RDWR
	flags := uint32(unix.LO_FLAGS_AUTOCLEAR)
	if ro {
		mode = os.O_RDONLY
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	back, err := os.OpenFile(path, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	for try := 0; try < 100; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), mode|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = flags
		copy(cfg.Info.File_name[:], path)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("LOOP_CONFIGURE %s on %s: %w", path, dev.Name(), err)
		}
	}
	return nil, fmt.Errorf("no free loop device for %s after 100 tries", path)
}

// shutdown syncs and unmounts what key's guest mounted, if it booted, and
// names its ext4 image.
func (g *guest) shutdown(key string) (string, error) {
	g.mu.Lock()
	s := g.staged[key]
	delete(g.staged, key)
	g.mu.Unlock()
	if s == nil {
		return "", nil
	}
	return s.image, s.unmountAll()
}

// releaseDisk makes sure no loop device still holds image once the guest is
// shut down. The daemon refuses to commit a writable layer that is in use
// (attached to a loop device), as no VM runtime commits a running guest's
// disk. The suite does, in one case: StatComitted commits while its own
// mount of the snapshot is still up, which keeps the ext4 (synced by
// unmountAll) alive on its loop device. The guest then stands for a running
// VM whose disk is snapshotted: the synced image is copied to a new file
// that takes its name, and the still-mounted file system keeps the old one,
// unlinked, until the suite unmounts it.
func releaseDisk(image string) error {
	for i := 0; i < 50; i++ {
		dev, err := loopOf(image)
		if err != nil || dev == "" {
			return err
		}
		time.Sleep(20 * time.Millisecond) // autoclear runs as the last user goes
	}
	fmt.Fprintf(os.Stderr, "guest: %s is still in use after shutdown (the suite's own mount is up): "+
		"committing a synced copy of it\n", image)
	tmp := image + ".guest-copy"
	if out, err := exec.Command("cp", "--sparse=always", image, tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copying %s: %v: %s", image, err, out)
	}
	return os.Rename(tmp, image)
}

// loopOf names the loop device image is attached to, or "".
func loopOf(image string) (string, error) {
	var want unix.Stat_t
	if err := unix.Stat(image, &want); err != nil {
		return "", err
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(strings.TrimSpace(string(b)), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			return filepath.Base(filepath.Dir(filepath.Dir(f))), nil
		}
	}
	return "", nil
}

func (s *stage) unmountAll() error {
	var errs []error
	if s.rw != "" {
		if fd, err := unix.Open(s.rw, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			if err := unix.Syncfs(fd); err != nil {
				errs = append(errs, fmt.Errorf("syncfs %s: %w", s.rw, err))
			}
			unix.Close(fd)
		}
	}
	for i := len(s.points) - 1; i >= 0; i-- {
		p := s.points[i]
		err := unix.Unmount(p, 0)
		if errors.Is(err, unix.EBUSY) {
			// The suite still has its own mount of this root open
			// (it commits before unmounting in some cases): the data
			// is synced; let the kernel drop it when the suite does.
			err = unix.Unmount(p, unix.MNT_DETACH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %w", p, err))
		}
	}
	s.points = nil
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (g *guest) teardownAll() error {
	g.mu.Lock()
	all := g.staged
	g.staged = map[string]*stage{}
	g.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.unmountAll())
	}
	return errors.Join(errs...)
}
