#!/usr/bin/env python3
"""A slow disk, in user space: a FUSE passthrough to a folder whose reads and writes are held
to a bandwidth (token bucket) and whose fsync takes a fixed time, like a cheap USB stick or SD
card. For the backup benchmark (docs/BENCHMARKS.md): this kernel has no netem-like disk
throttling, and the destination is what a school's box writes to.

    python3 benches/slowdisk.py BACKING MOUNTPOINT [--write-mbps 8] [--read-mbps 20] [--fsync-ms 30]

Needs fusepy (pip) and libfuse2 (Debian), and root (or fusermount). Stop with Ctrl+C or
`umount MOUNTPOINT`.
"""

import argparse
import errno
import os
import threading
import time

from fuse import FUSE, FuseOSError, Operations


class Bucket:
    """Bytes per second, shared by every file: one stick, one bus."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + n / self.rate
            wait = self.next_free - now
        if wait > 0:
            time.sleep(wait)


class Slow(Operations):
    def __init__(self, root, write, read, fsync_s):
        self.root = root
        self.write_bucket = Bucket(write)
        self.read_bucket = Bucket(read)
        self.fsync_s = fsync_s

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._p(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def mkdir(self, path, mode):
        return os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._p(path))

    def unlink(self, path):
        return os.unlink(self._p(path))

    def rename(self, old, new):
        return os.rename(self._p(old), self._p(new))

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def utimens(self, path, times=None):
        return os.utime(self._p(path), times)

    def open(self, path, flags):
        return os.open(self._p(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, length, offset, fh):
        self.read_bucket.take(length)
        # pread/pwrite: the kernel sends requests on one handle from several threads at once.
        return os.pread(fh, length, offset)

    def write(self, path, buf, offset, fh):
        self.write_bucket.take(len(buf))
        return os.pwrite(fh, buf, offset)

    def truncate(self, path, length, fh=None):
        with open(self._p(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        time.sleep(self.fsync_s)
        return os.fsync(fh)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("backing")
    a.add_argument("mountpoint")
    a.add_argument("--write-mbps", type=float, default=8.0)
    a.add_argument("--read-mbps", type=float, default=20.0)
    a.add_argument("--fsync-ms", type=float, default=30.0)
    args = a.parse_args()
    FUSE(
        Slow(args.backing, args.write_mbps * 1e6, args.read_mbps * 1e6, args.fsync_ms / 1000),
        args.mountpoint,
        foreground=True,
        nothreads=False,
        big_writes=True,
        max_write=1 << 17,
    )


if __name__ == "__main__":
    main()
