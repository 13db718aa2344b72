#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compare our .proto files with containerd's own, on what reaches the wire.

Both sets are compiled by protoc into FileDescriptorSets and decoded to text
with protoc itself (no Python protobuf module needed). For every message and
enum we define, each field must exist in containerd's with the same number,
name, type, label and message type; for every service we define, each method
must exist with the same types and streaming flags. For the Snapshots and
Diff services (which we serve), it also goes the other way: every method and
every field containerd 1.6 knows must be in ours.

Exit 77 (a skip) when containerd's protos are not installed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

CTRD = '/usr/share/gocode/src'
CTRD_API = 'github.com/containerd/containerd/api'
GOGO = '/usr/share/gocode/src/github.com/gogo/protobuf'
GOOGLEAPIS = '/usr/share/gocode/src/github.com/gogo/googleapis'  # google/rpc/status.proto

# Fields of later containerd releases (docs/containerd-contract.md) that 1.6 lacks.
NEWER = {
    'containerd.services.snapshots.v1.CommitSnapshotRequest': {'parent'},
    'containerd.services.diff.v1.ApplyRequest': {'sync_fs'},
    'containerd.services.diff.v1.DiffRequest': {'source_date_epoch'},
    'containerd.services.introspection.v1.ServerResponse': {'pid', 'pidns'},
}
# Packages whose messages we must cover completely (we are their server).
SERVED = {'containerd.services.snapshots.v1', 'containerd.services.diff.v1'}
OURS = ['mount', 'descriptor', 'snapshots', 'diff', 'content', 'introspection']


def parse_text(text):
    """Protobuf text format to nested lists of (key, value) pairs."""
    root = []
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == '}':
            stack.pop()
        elif line.endswith('{'):
            node = []
            stack[-1].append((line[:-1].strip(), node))
            stack.append(node)
        else:
            key, _, val = line.partition(':')
            val = val.strip()
            if val.startswith('"'):
                val = val[1:-1]
            stack[-1].append((key.strip(), val))
    return root


def get(node, key, default=None):
    for k, v in node:
        if k == key:
            return v
    return default


def getall(node, key):
    return [v for k, v in node if k == key]


def collect(fdset):
    """Full names → messages (field dicts), enums, service methods."""
    msgs, enums, methods = {}, {}, {}

    def walk_msg(prefix, m):
        name = prefix + '.' + get(m, 'name')
        fields = {}
        for f in getall(m, 'field'):
            fields[get(f, 'name')] = (get(f, 'number'), get(f, 'label'),
                                      get(f, 'type'), get(f, 'type_name'))
        msgs[name] = fields
        for sub in getall(m, 'nested_type'):
            walk_msg(name, sub)
        for e in getall(m, 'enum_type'):
            walk_enum(name, e)

    def walk_enum(prefix, e):
        enums[prefix + '.' + get(e, 'name')] = {
            get(v, 'name'): get(v, 'number') for v in getall(e, 'value')}

    for f in getall(fdset, 'file'):
        pkg = get(f, 'package', '')
        for m in getall(f, 'message_type'):
            walk_msg(pkg, m)
        for e in getall(f, 'enum_type'):
            walk_enum(pkg, e)
        for s in getall(f, 'service'):
            sname = pkg + '.' + get(s, 'name')
            for m in getall(s, 'method'):
                methods['/%s/%s' % (sname, get(m, 'name'))] = (
                    get(m, 'input_type'), get(m, 'output_type'),
                    get(m, 'client_streaming', 'false'),
                    get(m, 'server_streaming', 'false'))
    return msgs, enums, methods


def descriptor_set(protoc, includes, files, wkt):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'set.pb')
        cmd = [protoc] + ['-I' + i for i in includes] + \
            ['--include_imports', '-o', out] + files
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        with open(out, 'rb') as fp:
            text = subprocess.run(
                [protoc, '-I' + wkt, '--decode=google.protobuf.FileDescriptorSet',
                 'google/protobuf/descriptor.proto'],
                input=fp.read(), check=True, capture_output=True).stdout
    return collect(parse_text(text.decode()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--protoc', default='protoc')
    ap.add_argument('--ours', required=True)
    ap.add_argument('--wkt', default='/usr/include')
    args = ap.parse_args()

    theirs_files = [os.path.join(CTRD, CTRD_API, p) for p in (
        'services/snapshots/v1/snapshots.proto',
        'services/diff/v1/diff.proto',
        'services/content/v1/content.proto',
        'services/introspection/v1/introspection.proto')]
    if not all(os.path.exists(p) for p in theirs_files) or not os.path.isdir(GOGO) or \
            not os.path.isdir(GOOGLEAPIS):
        print('SKIP: containerd .proto files not installed '
              '(golang-github-containerd-containerd-dev)')
        return 77

    ours = descriptor_set(args.protoc, [args.ours, args.wkt],
                          [os.path.join(args.ours, n + '.proto') for n in OURS],
                          args.wkt)
    theirs = descriptor_set(args.protoc, [CTRD, GOGO, GOOGLEAPIS, args.wkt], theirs_files,
                            args.wkt)

    errors = []
    o_msgs, o_enums, o_methods = ours
    t_msgs, t_enums, t_methods = theirs
    checked = 0
    for name, fields in sorted(o_msgs.items()):
        if name.startswith('google.'):
            continue
        if name not in t_msgs:
            errors.append('message %s: not in containerd' % name)
            continue
        for fname, spec in fields.items():
            if fname not in t_msgs[name]:
                if fname not in NEWER.get(name.lstrip('.'), ()):
                    errors.append('%s.%s: not in containerd' % (name, fname))
                continue
            checked += 1
            if t_msgs[name][fname] != spec:
                errors.append('%s.%s: ours %s, containerd %s' %
                              (name, fname, spec, t_msgs[name][fname]))
        pkg = name.lstrip('.').rsplit('.', 1)[0]
        if any(pkg.startswith(s) for s in SERVED):
            for fname in t_msgs[name]:
                if fname not in fields:
                    errors.append('%s.%s: missing from ours' % (name, fname))
    for name, values in sorted(o_enums.items()):
        if t_enums.get(name) != values:
            errors.append('enum %s: ours %s, containerd %s' %
                          (name, values, t_enums.get(name)))
    for path, spec in sorted(o_methods.items()):
        if t_methods.get(path) != spec:
            errors.append('method %s: ours %s, containerd %s' %
                          (path, spec, t_methods.get(path)))
    for path in sorted(t_methods):
        svc = path.split('/')[1].rsplit('.', 1)[0]
        if svc in SERVED and path not in o_methods:
            errors.append('method %s: missing from ours' % path)

    for e in errors:
        print('FAIL:', e)
    print('%d messages, %d fields, %d enums, %d methods compared; %d errors' %
          (len([m for m in o_msgs if not m.startswith('google.')]), checked,
           len(o_enums), len(o_methods), len(errors)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
