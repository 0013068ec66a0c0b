#!/usr/bin/env python3
"""Drive oras-py (PyPI `oras`) against a registry on 127.0.0.1, for
tests/it/e2e/oras.rs.

push:   push FILE as an artifact with a `subject` (an image already in the
        repository), then read back what the client sees: the push response,
        the tags, the artifact's manifest, the referrers listing (through the
        client's own HTTP session; oras-py has no referrers call) and the
        pulled file.
pull:   read back what push reads back, without pushing.
delete: delete a tag with oras-py, then list the referrers again.

With --username (the password in BERTH_E2E_PASSWORD), the client logs in:
HTTP Basic with --auth-backend basic, bearer tokens with the default.

With --chunk-size, push uploads the file in chunks (POST, PATCH..., PUT);
without --subject-digest, the artifact has no subject and no referrers are
listed.

The result is written as JSON to --out; the Rust test does the asserting.
"""

import argparse
import json
import os
import sys

import oras.client
import oras.oci


def main():
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["push", "pull", "delete"])
    p.add_argument("--registry", required=True, help="127.0.0.1:PORT")
    p.add_argument("--repo", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--subject-digest")
    p.add_argument("--subject-size", type=int, default=0)
    p.add_argument("--subject-media-type", default="application/vnd.oci.image.manifest.v1+json")
    p.add_argument("--file", help="the artifact's one file")
    p.add_argument("--file-media-type")
    p.add_argument("--config", help="config blob; its media type is the artifact type")
    p.add_argument("--artifact-type")
    p.add_argument("--annotation", action="append", default=[], help="KEY=VALUE")
    p.add_argument("--chunk-size", type=int, help="chunked upload in pieces of this size")
    p.add_argument("--out", required=True)
    p.add_argument("--username", help="log in as this user (password from BERTH_E2E_PASSWORD)")
    p.add_argument("--auth-backend", default="token", choices=["token", "basic"])
    a = p.parse_args()

    client = oras.client.OrasClient(
        hostname=a.registry, insecure=True, auth_backend=a.auth_backend
    )
    if a.username:
        client.auth.set_basic_auth(a.username, os.environ["BERTH_E2E_PASSWORD"])
    target = f"{a.registry}/{a.repo}:{a.tag}"
    result = {"client_version": client.version(return_items=True)}

    if a.action == "push":
        # oras-py wants files relative to the working directory.
        os.chdir(os.path.dirname(os.path.abspath(a.file)))
        subject = None
        if a.subject_digest:
            subject = oras.oci.Subject(
                mediaType=a.subject_media_type, digest=a.subject_digest, size=a.subject_size
            )
        chunked = {}
        if a.chunk_size:
            chunked = {"do_chunked": True, "chunk_size": a.chunk_size}
        resp = client.push(
            target=target,
            files=[f"{os.path.basename(a.file)}:{a.file_media_type}"],
            manifest_config=f"{os.path.basename(a.config)}:{a.artifact_type}",
            manifest_annotations=dict(kv.split("=", 1) for kv in a.annotation),
            subject=subject,
            quiet=True,
            **chunked,
        )
        result["push_status"] = resp.status_code
        result["push_headers"] = {k.lower(): v for k, v in resp.headers.items()}
    if a.action in ("push", "pull"):
        result["tags"] = client.get_tags(f"{a.registry}/{a.repo}")
        result["manifest"] = client.get_manifest(target)
        pulled_dir = os.path.join(os.getcwd(), "pulled")
        files = client.pull(target=target, outdir=pulled_dir)
        result["pulled"] = {
            os.path.relpath(f, pulled_dir): open(f, "rb").read().hex() for f in files
        }
    else:
        result["deleted"] = client.delete_tag(f"{a.registry}/{a.repo}", a.tag)
        result["tags"] = client.get_tags(f"{a.registry}/{a.repo}")

    if a.subject_digest:
        url = f"http://{a.registry}/v2/{a.repo}/referrers/{a.subject_digest}"
        resp = client.do_request(url, "GET")
        result["referrers_status"] = resp.status_code
        result["referrers"] = resp.json()

    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
