"""`autobot backup create|list|verify|restore` against real processes.

A cluster under `autobot up` (redis-server with autobot.so, coordinator,
llm) gets knowledge-base documents and chat sessions; the archive is then
taken over the replication protocol, checked member by member, damaged on
purpose (refused, nothing changed), and restored into fresh clusters, both
under running services (--live) and with `autobot up` stopped (restore
starts the managed redis itself). The logs of a "remote" host come over
SSH from a private sshd on 127.0.0.1 when openssh-server is installed.
Everything listens on 127.0.0.1 only.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import AUTOBOT, MODULE, Redis, Resp, Up, free_port, http_json, wait_for

DOCS = {
    "solar.md": "# Solar power\n\nPhotovoltaic panels turn sunlight into electricity. "
                "Inverters convert direct current to alternating current.\n",
    "bread.txt": "To bake bread, mix flour, water, yeast and salt. Knead the dough for ten "
                 "minutes and let it rise for an hour.",
    "rivers.txt": "The Danube flows through ten countries into the Black Sea. The Nile is the "
                  "longest river in Africa.",
}


def cli(*args, timeout=180):
    # a new session: no terminal, so restore can never prompt
    return subprocess.run([AUTOBOT] + list(args), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def redis_password(u):
    with open(os.path.join(u.state_dir, "redis.password")) as f:
        return f.read().strip()


def key_counts(u):
    """The persistent keys and their types, without the registry (its keys
    expire and describe the processes, not the data) and the log stream
    (the roles append to it on their own, at any time)."""
    r = Resp(u.redis_port, redis_password(u))
    try:
        keys, cur = {}, b"0"
        while True:
            cur, batch = r.cmd("SCAN", cur, "COUNT", 1000)
            for k in batch:
                if not k.startswith(b"ab:svc:") and k != b"ab:log" and r.cmd("PTTL", k) == -1:
                    keys[k] = r.cmd("TYPE", k)
            if cur in (b"0", "0", 0):
                return keys
    finally:
        r.close()


def digest(u):
    """Every key of the database with its DUMP payload: equal digests mean
    nothing changed. Left out: the registry and the log stream (the roles
    refresh them on their own); streams are compared by length and last
    entry, since a worker's blocking read updates its consumer's seen-time,
    which DUMP includes."""
    r = Resp(u.redis_port, redis_password(u))
    try:
        out, cur = {}, b"0"
        while True:
            cur, batch = r.cmd("SCAN", cur, "COUNT", 1000)
            for k in batch:
                if k.startswith(b"ab:svc:") or k == b"ab:log":
                    continue
                if r.cmd("TYPE", k) == "stream":
                    out[k] = (r.cmd("XLEN", k), r.cmd("XREVRANGE", k, "+", "-", "COUNT", 1))
                else:
                    out[k] = r.cmd("DUMP", k)
            if cur in (b"0", "0", 0):
                return out
    finally:
        r.close()


def settled(u):
    """Waits until the kb workers of a cluster made their stream (a fresh
    cluster creates it a moment after it is up)."""
    r = Resp(u.redis_port, redis_password(u))
    try:
        assert wait_for(lambda: r.cmd("EXISTS", "ab:jobs:kb") == 1, 10)
    finally:
        r.close()
    return u


def add_docs(u):
    ids = {}
    for name, text in DOCS.items():
        st, r = http_json("POST", u.port, "/api/knowledge/documents", token=u.token,
                          body={"text": text, "title": name, "filename": name}, timeout=30)
        assert st == 202, r
        ids[name] = r["id"]
    def ready():
        st, lst = http_json("GET", u.port, "/api/knowledge/documents?limit=100", token=u.token)
        return st == 200 and len(lst["documents"]) == len(DOCS) and \
            all(d["status"] == "ready" for d in lst["documents"])
    assert wait_for(ready, 60), "the documents were not indexed"
    return ids


def add_sessions(u, n=2):
    sids = []
    for i in range(n):
        st, s = http_json("POST", u.port, "/api/chat/sessions", token=u.token,
                          body={"title": "session %d" % i, "system": "be brief"})
        assert st in (200, 201), s
        sids.append(s["id"])
    return sorted(sids)


def search_top(u, query):
    st, res = http_json("POST", u.port, "/api/knowledge/search", token=u.token,
                        body={"query": query, "k": 1}, timeout=30)
    assert st == 200, res
    return res["results"][0]["doc_id"] if res["results"] else None


def members(archive):
    p = subprocess.run(["tar", "--zstd", "-tf", archive], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def member(archive, name):
    p = subprocess.run(["tar", "--zstd", "-xOf", archive, name], capture_output=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def archives(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".tar.zst"))


@pytest.fixture
def src(tmpdir_ab):
    """A cluster with documents and chat sessions."""
    u = Up(os.path.join(tmpdir_ab, "src")).start()
    u.doc_ids = add_docs(u)
    u.sessions = add_sessions(u)
    yield u
    u.stop()


@pytest.fixture
def made(src, tmpdir_ab):
    """src plus one archive of it."""
    out = os.path.join(tmpdir_ab, "backups")
    t0 = time.monotonic()
    p = cli("backup", "create", "--out", out, *src.cli_args())
    src.t_create = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    made = archives(out)
    assert len(made) == 1, made
    src.archive = os.path.join(out, made[0])
    src.backups = out
    return src


def test_create_makes_a_readable_archive_with_manifest(made):
    u = made
    name = os.path.basename(u.archive)
    assert name.startswith("autobot-autobot-") and name.endswith("Z.tar.zst"), name
    assert oct(os.stat(u.archive).st_mode & 0o777) == "0o600"
    names = members(u.archive)  # GNU tar reads it: a standard tar.zst
    assert names[0] == "manifest.json" and "redis/dump.rdb" in names
    man = json.loads(member(u.archive, "manifest.json"))
    assert man["format"] == "autobot-backup" and man["format_version"] == 1
    assert [m["name"] for m in man["members"]] == names[1:]
    v = man["versions"]
    assert v["autobot"] and v["redis"].startswith("7.") and v["rdb"] >= 9, v
    # every member's size and sha256 as listed
    import hashlib
    for m in man["members"]:
        data = member(u.archive, m["name"])
        assert len(data) == m["size"] and hashlib.sha256(data).hexdigest() == m["sha256"], m
    # the knowledge base's documents, readable without Redis
    for fname, text in DOCS.items():
        path = "kb/%s/%s" % (u.doc_ids[fname], fname)
        assert path in names, (path, names)
        assert member(u.archive, path).decode() == text
    index = json.loads(member(u.archive, "kb/index.json"))
    assert {d["id"] for d in index} == set(u.doc_ids.values())
    assert man["kb"]["documents"] == 3 and man["kb"]["chunks"] >= 3
    # the counts: exact, from the snapshot, equal to the live server's (idle)
    live = key_counts(u)
    persistent = man["keys"]["persistent"]
    assert sum(n for p, n in persistent.items() if p not in ("ab:svc:", "ab:log")) == len(live), \
        (persistent, live)
    assert persistent["ab:kb:doc:"] == 3 and persistent["ab:kb:src:"] == 3
    assert persistent["ab:chat:"] >= 2 and persistent["ab:chats"] == 1
    # the logs of this host
    assert any(n.startswith("logs/local/") and n.endswith(".log") for n in names), names
    # no secret anywhere: config redacted, no secret files
    cfg = json.loads(member(u.archive, "config/config.json"))
    assert cfg["services"]["redis"]["password"] == "[redacted]", cfg["services"]["redis"]
    assert not any(n.startswith("secrets/") for n in names)
    everything = subprocess.run(["zstd", "-dc", u.archive], capture_output=True).stdout
    assert redis_password(u).encode() not in everything
    assert u.token.encode() not in everything
    print("backup: create %.2f s, archive %d bytes, %d members"
          % (u.t_create, os.path.getsize(u.archive), len(names)))


def test_include_secrets(src, tmpdir_ab):
    out = os.path.join(tmpdir_ab, "with-secrets")
    p = cli("backup", "create", "--out", out, "--include-secrets", *src.cli_args())
    assert p.returncode == 0, p.stdout + p.stderr
    a = os.path.join(out, archives(out)[0])
    names = members(a)
    assert "secrets/admin.token" in names and "secrets/redis.password" in names
    assert member(a, "secrets/admin.token").decode().strip() == src.token
    cfg = json.loads(member(a, "config/config.json"))
    assert cfg["services"]["redis"]["password"] == redis_password(src)


def test_verify_list_and_keep(made):
    u = made
    t0 = time.monotonic()
    p = cli("backup", "verify", u.archive, *u.cli_args())
    t_verify = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    assert "counts match the manifest" in p.stdout
    p = cli("backup", "list", "--out", u.backups, *u.cli_args())
    assert p.returncode == 0 and os.path.basename(u.archive) in p.stdout, p.stdout
    p = cli("backup", "list", "--json", "--out", u.backups, *u.cli_args())
    lst = json.loads(p.stdout)
    assert lst[0]["path"] == u.archive and lst[0]["documents"] == 3
    # two more with --keep 2: the oldest goes, the newest two stay
    first = os.path.basename(u.archive)
    for _ in range(2):
        p = cli("backup", "create", "--out", u.backups, "--keep", "2", *u.cli_args())
        assert p.returncode == 0, p.stdout + p.stderr
    kept = archives(u.backups)
    assert len(kept) == 2 and first not in kept, kept
    assert "pruned" in p.stdout
    # archives of another cluster are not this cluster's to prune
    other = os.path.join(u.backups, "autobot-other-20200101T000000Z.tar.zst")
    shutil.copy(os.path.join(u.backups, kept[0]), other)
    p = cli("backup", "create", "--out", u.backups, "--keep", "1", *u.cli_args())
    assert p.returncode == 0
    assert os.path.exists(other) and len(archives(u.backups)) == 2
    # no staging folder or partial file left behind
    assert [f for f in os.listdir(u.backups) if f.startswith(".")] == []
    print("backup: verify %.2f s" % t_verify)


def test_damaged_archives_are_refused_and_change_nothing(made, tmpdir_ab):
    u = made
    data = open(u.archive, "rb").read()
    before = digest(u)
    bad = {}
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x20
    bad["corrupt"] = bytes(flipped)
    bad["truncated"] = data[:len(data) * 2 // 3]
    bad["cut-at-the-end"] = data[:-1]
    bad["empty"] = b""
    bad["garbage-after"] = data + b"\x00junk"
    for what, blob in bad.items():
        path = os.path.join(tmpdir_ab, what + ".tar.zst")
        with open(path, "wb") as f:
            f.write(blob)
        p = cli("backup", "verify", path, *u.cli_args())
        assert p.returncode == 1, (what, p.stdout, p.stderr)
        assert "refused" in p.stderr, (what, p.stderr)
        p = cli("backup", "restore", path, "--yes", "--live", *u.cli_args())
        assert p.returncode == 1 and "nothing was changed" in p.stderr, (what, p.stderr)
    assert digest(u) == before, "a refused restore changed the database"
    # a missing file says so
    p = cli("backup", "verify", os.path.join(tmpdir_ab, "nope.tar.zst"), *u.cli_args())
    assert p.returncode == 1 and "refused" in p.stderr


def rebuild(archive, d, change):
    """Unpacks archive into d, lets change(d) edit the files, fixes the
    manifest's sizes and checksums, and packs it again with GNU tar (pax
    format) and zstd, in the manifest's order."""
    import hashlib
    os.makedirs(d)
    subprocess.run(["tar", "--zstd", "-xf", archive, "-C", d], check=True)
    change(d)
    mpath = os.path.join(d, "manifest.json")
    man = json.load(open(mpath))
    for m in man["members"]:
        data = open(os.path.join(d, m["name"]), "rb").read()
        m["size"], m["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    with open(mpath, "w") as f:
        json.dump(man, f)
    out = d + ".tar.zst"
    names = ["manifest.json"] + [m["name"] for m in man["members"]]
    subprocess.run("tar --format=pax -C %s -cf - %s | zstd -q -o %s"
                   % (d, " ".join(names), out), shell=True, check=True)
    return out


def test_archive_rebuilt_by_gnu_tar_and_a_snapshot_that_does_not_load(made, tmpdir_ab):
    u = made
    # the same content packed by GNU tar: still an archive autobot reads
    same = rebuild(u.archive, os.path.join(tmpdir_ab, "same"), lambda d: None)
    p = cli("backup", "verify", same, *u.cli_args())
    assert p.returncode == 0, p.stdout + p.stderr

    def damage_rdb(d):
        path = os.path.join(d, "redis", "dump.rdb")
        data = bytearray(open(path, "rb").read())
        for i in range(len(data) // 2, len(data) // 2 + 16):
            data[i] ^= 0xff
        open(path, "wb").write(bytes(data))
    bad = rebuild(u.archive, os.path.join(tmpdir_ab, "bad"), damage_rdb)
    p = cli("backup", "verify", bad, *u.cli_args())
    assert p.returncode == 1 and "the snapshot does not load" in p.stderr, p.stderr
    before = digest(u)
    p = cli("backup", "restore", bad, "--yes", "--live", *u.cli_args())
    assert p.returncode == 1 and "nothing was changed" in p.stderr, p.stderr
    assert digest(u) == before

    # checksums right, but a member that is a link: refused
    def add_link(d):
        os.symlink("/etc/passwd", os.path.join(d, "config", "link"))
    linked = rebuild(u.archive, os.path.join(tmpdir_ab, "linked"), add_link)
    subprocess.run("zstd -dcq %s > %s.tar && tar --format=pax -rf %s.tar -C %s config/link && "
                   "zstd -qf %s.tar -o %s" % (linked, linked, linked,
                                              os.path.join(tmpdir_ab, "linked"), linked, linked),
                   shell=True, check=True)
    p = cli("backup", "verify", linked, *u.cli_args())
    assert p.returncode == 1 and "symbolic link" in p.stderr, p.stderr


def test_restore_into_fresh_cluster_while_it_runs(made, tmpdir_ab):
    u = made
    want_counts = key_counts(u)
    want_solar = search_top(u, "photovoltaic panels sunlight")
    assert want_solar == u.doc_ids["solar.md"]
    fresh = settled(Up(os.path.join(tmpdir_ab, "fresh")).start())
    try:
        before = digest(fresh)
        # services are registered: refused without --live, nothing changed
        p = cli("backup", "restore", u.archive, "--yes", *fresh.cli_args())
        assert p.returncode == 1 and "--live" in p.stderr, p.stderr
        assert "coordinator" in p.stderr and "nothing was changed" in p.stderr
        # no --yes and no terminal: refused too
        p = cli("backup", "restore", u.archive, "--live", *fresh.cli_args())
        assert p.returncode == 1 and "--yes" in p.stderr, p.stderr
        assert digest(fresh) == before
        t0 = time.monotonic()
        p = cli("backup", "restore", u.archive, "--yes", "--live", *fresh.cli_args())
        t_restore = time.monotonic() - t0
        assert p.returncode == 0, p.stdout + p.stderr
        assert "counts      match the manifest" in p.stdout
        got = key_counts(fresh)
        assert got == want_counts, (sorted(set(got) ^ set(want_counts)))
        # the fresh coordinator serves the restored data at once
        assert search_top(fresh, "photovoltaic panels sunlight") == want_solar
        assert search_top(fresh, "longest river in Africa") == u.doc_ids["rivers.txt"]
        st, lst = http_json("GET", fresh.port, "/api/chat/sessions", token=fresh.token)
        assert sorted(s["id"] for s in lst["sessions"]) == u.sessions
        st, doc = http_json("GET", fresh.port, "/api/knowledge/documents/" +
                            u.doc_ids["bread.txt"], token=fresh.token)
        assert st == 200 and doc["status"] == "ready"
        print("backup: restore --live into a fresh cluster %.2f s" % t_restore)
    finally:
        fresh.stop()


def test_restore_with_up_stopped_uses_the_managed_redis(made, tmpdir_ab):
    u = made
    want_counts = key_counts(u)
    state = os.path.join(tmpdir_ab, "offline")
    first = Up(state).start()
    args = first.cli_args()
    first.stop()
    assert first.proc.wait(15) is not None
    p = cli("backup", "restore", u.archive, "--yes", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "starting the managed one" in p.stdout and "saved and stopped" in p.stdout
    # `autobot up` again on the same state dir: the data is there
    again = Up(state).start()
    try:
        assert key_counts(again) == want_counts
        assert search_top(again, "knead the dough yeast") == u.doc_ids["bread.txt"]
    finally:
        again.stop()


def test_restore_refuses_a_redis_without_the_module(made, tmpdir_ab):
    """The snapshot holds vector sets and text indexes: a target without
    autobot.so is found out by the probe, before anything changes."""
    plain = Redis(os.path.join(tmpdir_ab), password="plain-redis-pw-123").start()
    try:
        r = Resp(plain.port, plain.password)
        r.cmd("SET", "precious", "keep me")
        args = ["--state-dir", os.path.join(tmpdir_ab, "plain-state"),
                "--set", "services.redis.port=%d" % plain.port,
                "--set", "services.redis.password=%s" % plain.password,
                "--set", "services.redis.managed=false"]
        p = cli("backup", "restore", made.archive, "--yes", *args)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "autobot.so" in p.stderr and "nothing was changed" in p.stderr, p.stderr
        assert r.cmd("GET", "precious") == b"keep me" and r.cmd("DBSIZE") == 1
        r.close()
    finally:
        plain.stop()


def test_usage():
    p = cli("backup", "--help")
    assert p.returncode == 0 and "backup create" in p.stdout
    p = cli("backup", "verify")
    assert p.returncode == 64
    p = cli("backup", "frobnicate")
    assert p.returncode == 64
    p = cli("backup", "create", "--keep", "0")
    assert p.returncode == 64 and "--keep" in p.stderr


# ---- the logs of another host, over SSH --------------------------------------

def test_remote_logs_over_ssh(tmpdir_ab):
    try:
        from test_deploy import Sshd, _need_ssh
    except ImportError:
        pytest.skip("test_deploy.py (the sshd fixture) is not there")
    _need_ssh()
    d = os.path.join(tmpdir_ab, "ssh")
    os.makedirs(d)
    sshd = Sshd(d).start()
    redis = Redis(os.path.join(tmpdir_ab)).start(module=True)
    try:
        remote_logs = os.path.join(sshd.remote, "state", "logs")
        os.makedirs(remote_logs)
        with open(os.path.join(remote_logs, "coordinator.log"), "w") as f:
            f.write("level=info msg=\"remote line\"\n")
        with open(os.path.join(remote_logs, "notes.txt"), "w") as f:
            f.write("not a log\n")
        state = os.path.join(tmpdir_ab, "local-state")
        cfg = os.path.join(tmpdir_ab, "c.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "state_dir: %s" % state,
                "hosts:",
                "  node1: 127.0.0.1",
                "services:",
                "  redis: { host: 127.0.0.1, port: %d, password: \"%s\", managed: false }"
                % (redis.port, redis.password),
                "deploy:",
                "  ssh_port: %d" % sshd.port,
                "  ssh_key: %s" % sshd.operator_key,
                "  remote_state_dir: %s/state" % sshd.remote,
                ""]))
        out = os.path.join(tmpdir_ab, "out")
        p = cli("backup", "create", "--config", cfg, "--out", out)
        assert p.returncode == 0, p.stdout + p.stderr + sshd.read_log()
        assert "warning" not in p.stderr, p.stderr
        a = os.path.join(out, archives(out)[0])
        names = members(a)
        assert "logs/node1/coordinator.log" in names, names
        assert "logs/node1/notes.txt" not in names
        assert member(a, "logs/node1/coordinator.log") == b"level=info msg=\"remote line\"\n"
        man = json.loads(member(a, "manifest.json"))
        assert {"host": "node1", "addr": "127.0.0.1", "files": 1} in man["logs"], man["logs"]
        p = cli("backup", "verify", a, "--config", cfg)
        assert p.returncode == 0, p.stdout + p.stderr
        # an unreachable host is a warning, not a failure
        sshd.stop()
        p = cli("backup", "create", "--config", cfg, "--out", out, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "warning: logs of node1 not included" in p.stderr, p.stderr
    finally:
        redis.stop()
        if sshd.proc and sshd.proc.poll() is None:
            sshd.stop()


# ---- a knowledge base of 10k chunks ------------------------------------------

@pytest.mark.skipif(not os.environ.get("AB_BACKUP_10K"),
                    reason="the 10k-chunk backup benchmark runs with AB_BACKUP_10K=1 "
                           "(about a minute on two cores)")
def test_backup_of_10k_chunks(tmpdir_ab):
    """102 documents of ~6300 words, chunked at 64 tokens: >= 10000 chunks,
    ingested through the API; then create, verify and restore into a fresh
    cluster, timed."""
    import random
    extra = ["--set", "kb.chunk_tokens=64", "--set", "kb.chunk_overlap=0"]
    u = Up(os.path.join(tmpdir_ab, "big"), extra=extra).start()
    fresh = None
    try:
        rnd = random.Random(7)
        words = ["w%d" % i for i in range(5000)] + ["photovoltaic", "sourdough", "delta"]
        t0 = time.monotonic()
        for i in range(102):
            text = ". ".join(" ".join(rnd.choice(words) for _ in range(12))
                             for _ in range(525)) + "."
            if i == 42:
                text = "Photovoltaic sourdough delta marker. " + text
            st, r = http_json("POST", u.port, "/api/knowledge/documents", token=u.token,
                              body={"text": text, "title": "doc %d" % i,
                                    "filename": "doc%d.txt" % i}, timeout=60)
            assert st == 202, r
            if i == 42:
                marked = r["id"]

        def ready():
            st, lst = http_json("GET", u.port, "/api/knowledge/documents?limit=1000",
                                token=u.token, timeout=30)
            return len(lst["documents"]) == 102 and \
                all(d["status"] == "ready" for d in lst["documents"])
        assert wait_for(ready, 900, step=1)
        t_ingest = time.monotonic() - t0
        st, stats = http_json("GET", u.port, "/api/knowledge/stats", token=u.token)
        assert stats["chunks"] >= 10000, stats
        out = os.path.join(tmpdir_ab, "out")
        t0 = time.monotonic()
        p = cli("backup", "create", "--out", out, *u.cli_args(), timeout=600)
        t_create = time.monotonic() - t0
        assert p.returncode == 0, p.stdout + p.stderr
        archive = os.path.join(out, archives(out)[0])
        t0 = time.monotonic()
        p = cli("backup", "verify", archive, *u.cli_args(), timeout=600)
        t_verify = time.monotonic() - t0
        assert p.returncode == 0, p.stdout + p.stderr
        want = key_counts(u)
        u.stop()
        fresh = Up(os.path.join(tmpdir_ab, "fresh"), extra=extra).start()
        t0 = time.monotonic()
        p = cli("backup", "restore", archive, "--yes", "--live", *fresh.cli_args(), timeout=600)
        t_restore = time.monotonic() - t0
        assert p.returncode == 0, p.stdout + p.stderr
        assert key_counts(fresh) == want
        st, stats2 = http_json("GET", fresh.port, "/api/knowledge/stats", token=fresh.token)
        assert (stats2["chunks"], stats2["vectors"]) == (stats["chunks"], stats["vectors"])
        assert search_top(fresh, "photovoltaic sourdough delta marker") == marked
        print("backup of %d chunks (%d documents, ingested in %.1f s): archive %.1f MiB, "
              "create %.2f s, verify %.2f s, restore --live into a fresh cluster %.2f s"
              % (stats["chunks"], stats["documents"], t_ingest,
                 os.path.getsize(archive) / 1048576.0, t_create, t_verify, t_restore))
    finally:
        u.stop()
        if fresh:
            fresh.stop()
