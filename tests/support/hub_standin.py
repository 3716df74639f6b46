"""A local stand-in for the Hugging Face Hub endpoints that huggingface_hub's upload calls.

It answers repo creation, dataset info, the file tree, file downloads (resolve), preupload and
commit on 127.0.0.1 and records what it was sent: which repos, their visibility, the files
committed (content included) and the token used. Every file is declared "regular" at preupload,
so the commit carries the bytes inline and no Xet/LFS storage server is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


@dataclass
class HubRecord:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)
    validated_cards: int = 0


class HubHandler(BaseHTTPRequestHandler):
    record: HubRecord
    endpoint: str

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _note(self) -> str:
        path = self.path.split("?")[0]
        self.record.requests.append((self.command, path))
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.record.tokens.add(auth.removeprefix("Bearer "))
        return path

    def _resolve(self, path: str, body: bool) -> bool:
        """A file's bytes (GET) or only its headers (HEAD), as hf_hub_download reads them."""
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/[^/]+/(.+)", path)
        if not m:
            return False
        repo = self.record.repos.get(m.group(1))
        data = repo.files.get(m.group(2)) if repo else None
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        self.send_response(200)
        self.send_header("X-Repo-Commit", repo.commits[-1] if repo.commits else "0" * 40)
        self.send_header("ETag", f'"{_git_oid(data)}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        return True

    def do_HEAD(self) -> None:  # noqa: N802
        path = self._note()
        if not self._resolve(path, body=False):
            self.record.unknown.append(f"HEAD {path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        path = self._note()
        if self._resolve(path, body=True):
            return
        if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/[^/]+)?", path):
            repo = self.record.repos.get(m.group(1))
            if repo is None:
                self._send(404, {"error": "Repository not found"})
                return
            head = repo.commits[-1] if repo.commits else "0" * 40
            self._send(200, {"id": m.group(1), "_id": m.group(1), "private": repo.private, "sha": head,
                             "siblings": [{"rfilename": f} for f in sorted(repo.files)], "tags": [],
                             "disabled": False, "gated": False, "downloads": 0, "likes": 0,
                             "author": m.group(1).split("/")[0], "lastModified": "2026-11-22T00:00:00.000Z"})
            return
        if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/[^/]+(/.*)?", path):
            repo = self.record.repos.get(m.group(1))
            prefix = (m.group(2) or "/").strip("/")
            files = sorted(f for f in (repo.files if repo else {}) if f.startswith(prefix))
            self._send(200, [{"type": "file", "path": f, "size": len(repo.files[f]), "oid": _git_oid(repo.files[f])}
                             for f in files])
            return
        if path == "/api/agent-harnesses":  # the client's user-agent registry: optional, 404 is fine
            self._send(404, {"error": "not served by the stand-in"})
            return
        self.record.unknown.append(f"GET {path}")
        self._send(404, {"error": f"stand-in has no GET {path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = self._note()
        body = self._body()
        if path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            if "/" not in repo_id:
                repo_id = f"standin-user/{repo_id}"
            url = f"{self.endpoint}/datasets/{repo_id}"
            if repo_id in self.record.repos:
                self._send(409, {"error": "You already created this dataset repo", "url": url})
                return
            # huggingface_hub 2 sends "visibility"; older clients sent "private"
            private = req.get("visibility", "private" if req.get("private") else "public") != "public"
            self.record.repos[repo_id] = Repo(private=private)
            self._send(200, {"url": url, "name": repo_id, "id": repo_id})
            return
        if path == "/api/validate-yaml":
            errors = _card_header_errors(json.loads(body)["content"])
            self.record.validated_cards += 1
            self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})
            return
        if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/preupload/[^/]+", path):
            files = json.loads(body)["files"]
            repo = self.record.repos.get(m.group(1))
            self._send(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": _git_oid(repo.files[f["path"]]) if repo and f["path"] in repo.files else None}
                for f in files]})
            return
        if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commit/[^/]+", path):
            repo = self.record.repos.get(m.group(1))
            if repo is None:
                self._send(404, {"error": "Repository not found"})
                return
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    repo.files.pop(item["value"]["path"], None)
                elif item["key"] != "header":
                    self._send(400, {"error": f"stand-in only takes regular files, got {item['key']}"})
                    return
            oid = hashlib.sha1(body).hexdigest()
            repo.commits.append(oid)
            self._send(200, {"commitUrl": f"{self.endpoint}/datasets/{m.group(1)}/commit/{oid}",
                             "commitOid": oid, "success": True, "pullRequestUrl": None})
            return
        self.record.unknown.append(f"POST {path}")
        self._send(404, {"error": f"stand-in has no POST {path}"})


def _card_header_errors(content: str) -> list[str]:
    """The checks the Hub makes that matter here: a YAML mapping with a license and parquet configs."""
    if not content.startswith("---\n") or "\n---\n" not in content[3:]:
        return ["no YAML front matter"]
    try:
        header = yaml.safe_load(content[4:content.index("\n---\n", 3)])
    except yaml.YAMLError as exc:
        return [f"YAML: {exc}"]
    if not isinstance(header, dict):
        return ["front matter is not a mapping"]
    errors = [] if isinstance(header.get("license"), str) else ["license must be a string"]
    for config in header.get("configs", []):
        if not config.get("data_files"):
            errors.append(f"config {config.get('config_name')} has no data_files")
    return errors


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandin:
    """`with HubStandin() as hub:` → hub.endpoint, hub.record."""

    def __init__(self) -> None:
        self.record = HubRecord()
        handler = type("Handler", (HubHandler,), {"record": self.record, "endpoint": ""})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        handler.endpoint = self.endpoint
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


TOKEN = "hf_embedpipeTestTokenThatMustNeverBeLogged123"

