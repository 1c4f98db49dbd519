"""Generates the testdata inputs (provgate.dev/policy-input/v1) of the built-in
contracts and docs/examples/policy-input.json.

    python3 policies/tools/gen_testdata.py .    # from the repository root

The documents follow docs/policy-input.schema.json; check them with
`python3 docs/validate_policy_inputs.py`. Digests are SHA-256 of labels, so
the output is deterministic. Rebuild provgate afterwards: the testdata is
embedded."""
import base64, copy, hashlib, json, os, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."

def h(label):
    return hashlib.sha256(label.encode()).hexdigest()

def d(label):
    return "sha256:" + h(label)

def sha1(label):
    return hashlib.sha1(label.encode()).hexdigest()

NOW = "2026-11-25T10:00:00Z"
REPO = "acme/payments-api"
IMAGE_NAME = "ghcr.io/acme/payments-api"
INDEX = d("ghcr.io/acme/payments-api@1.8.3 index")
AMD64 = d("ghcr.io/acme/payments-api@1.8.3 linux/amd64")
ARM64 = d("ghcr.io/acme/payments-api@1.8.3 linux/arm64")
OTHER = d("ghcr.io/acme/payments-api@1.8.2 index")
COMMIT = sha1("acme/payments-api v1.8.3")
WF_SHA = COMMIT
REKOR_LOG_ID = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
RUN_ID = "11982375551"

def image(platforms=True):
    """The image as provgate judges it: the linux/amd64 platform of the index
    (evidence bound to the index or to this platform counts), or, with
    platforms=False, a single-platform image whose manifest is INDEX."""
    img = {
        "ref": IMAGE_NAME + ":1.8.3",
        "registry": "ghcr.io",
        "repository": REPO,
        "tag": "1.8.3",
        "digest": INDEX,
    }
    if platforms:
        img.update({"digest": AMD64, "platform": "linux/amd64", "index": INDEX})
    return img

def gha_signer(workflow="release.yml", repo=REPO, ref="refs/tags/v1.8.3", root="public-good"):
    owner = repo.split("/")[0]
    wf_ref = f"https://github.com/{repo}/.github/workflows/{workflow}@{ref}"
    return {
        "kind": "keyless",
        "issuer": "https://token.actions.githubusercontent.com",
        "subject": wf_ref,
        "extensions": {
            "buildConfigDigest": WF_SHA,
            "buildConfigURI": wf_ref,
            "buildSignerDigest": WF_SHA,
            "buildSignerURI": wf_ref,
            "buildTrigger": "push",
            "githubWorkflowName": "release",
            "githubWorkflowRef": ref,
            "githubWorkflowRepository": repo,
            "githubWorkflowSHA": WF_SHA,
            "githubWorkflowTrigger": "push",
            "runInvocationURI": f"https://github.com/{repo}/actions/runs/{RUN_ID}/attempts/1",
            "runnerEnvironment": "github-hosted",
            "sourceRepositoryDigest": COMMIT,
            "sourceRepositoryIdentifier": "812734561",
            "sourceRepositoryOwnerIdentifier": "90412233",
            "sourceRepositoryOwnerURI": f"https://github.com/{owner}",
            "sourceRepositoryRef": ref,
            "sourceRepositoryURI": f"https://github.com/{repo}",
            "sourceRepositoryVisibilityAtSigning": "private",
        },
        "trustedRoot": root,
    }

def key_signer():
    return {"kind": "key", "keyId": h("acme release key spki"), "keyName": "acme-release"}

def rekor_time(value):
    return {"source": "rekor", "value": value}

def tlog(index, when, kind="dsse/0.0.1"):
    return [{
        "logIndex": index,
        "logId": REKOR_LOG_ID,
        "kind": kind,
        "integratedTime": when,
        "inclusionProof": True,
        "inclusionPromise": True,
    }]

def statement(pt, predicate, subject_digest, name=IMAGE_NAME, v="https://in-toto.io/Statement/v1"):
    return {
        "_type": v,
        "subject": [{"name": name, "digest": {"sha256": subject_digest.split(":")[1]}}],
        "predicateType": pt,
        "predicate": predicate,
    }

def attestation(pt, predicate, subject=INDEX, when="2026-11-24T09:12:31Z", signer=None,
                index=151234567, label=None, source="referrers", stmt_subject=None,
                statement_type="https://in-toto.io/Statement/v1", name=IMAGE_NAME, authority="github-actions"):
    return {
        "predicateType": pt,
        "statement": statement(pt, predicate, stmt_subject or subject, name=name, v=statement_type),
        "subject": subject,
        "digest": d(label or (pt + subject + when)),
        "authority": authority,
        "signer": signer or gha_signer(),
        "time": rekor_time(when),
        "tlog": tlog(index, when),
        "source": {"kind": source},
    }

def cosign_signature(subject=INDEX, when="2026-11-24T09:12:40Z", signer=None, index=151234601):
    return {
        "subject": subject,
        "digest": d("cosign signature " + subject + when),
        "authority": "github-actions",
        "signer": signer or gha_signer(),
        "time": rekor_time(when),
        "tlog": tlog(index, when, kind="hashedrekord/0.0.1"),
        "source": {"kind": "cosign-sig"},
        "payload": {
            "critical": {
                "identity": {"docker-reference": IMAGE_NAME},
                "image": {"docker-manifest-digest": subject},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
    }

def context():
    return {
        "source": "admission",
        "namespace": "payments",
        "kind": "Deployment",
        "name": "payments-api",
        "container": "api",
        "operation": "CREATE",
        "labels": {"app.kubernetes.io/name": "payments-api", "app.kubernetes.io/part-of": "payments"},
        "user": "system:serviceaccount:argocd:argocd-application-controller",
    }

def policy_input(contract, version, parameters, attestations=(), signatures=(), platforms=True, now=NOW):
    return {
        "apiVersion": "provgate.dev/policy-input/v1",
        "now": now,
        "image": image(platforms),
        "attestations": list(attestations),
        "signatures": list(signatures),
        "context": context(),
        "contract": {"name": contract, "version": version, "parameters": parameters},
    }

# --- predicates -----------------------------------------------------------

SLSA1 = "https://slsa.dev/provenance/v1"
SLSA02 = "https://slsa.dev/provenance/v0.2"

def gha_provenance():
    """actions/attest-build-provenance (buildSLSAProvenancePredicate)."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/tags/v1.8.3",
                    "repository": f"https://github.com/{REPO}",
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": "push",
                    "repository_id": "812734561",
                    "repository_owner_id": "90412233",
                    "runner_environment": "github-hosted",
                }
            },
            "resolvedDependencies": [
                {"uri": f"git+https://github.com/{REPO}@refs/tags/v1.8.3", "digest": {"gitCommit": COMMIT}}
            ],
        },
        "runDetails": {
            "builder": {"id": f"https://github.com/{REPO}/.github/workflows/release.yml@refs/tags/v1.8.3"},
            "metadata": {"invocationId": f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1"},
        },
    }

DOCKERFILE = b"""# syntax=docker/dockerfile:1.12
FROM golang:1.23-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/payments-api ./cmd/payments-api

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/payments-api /payments-api
USER nonroot:nonroot
ENTRYPOINT ["/payments-api"]
"""

FRONTEND = {"uri": "pkg:docker/docker/dockerfile@1.12", "digest": {"sha256": h("docker/dockerfile:1.12")}}
GOLANG = {"uri": "pkg:docker/golang@1.23-alpine?platform=linux%2Famd64", "digest": {"sha256": h("golang:1.23-alpine amd64")}}
DISTROLESS = {"uri": "pkg:docker/gcr.io/distroless/static-debian12@nonroot?platform=linux%2Famd64", "digest": {"sha256": h("distroless/static-debian12:nonroot amd64")}}
GIT_CONTEXT = f"https://github.com/{REPO}.git#refs/tags/v1.8.3"

def buildkit_v1(git_context=True, infos=False):
    ext = {
        "configSource": {"uri": GIT_CONTEXT, "digest": {"sha1": COMMIT}, "path": "Dockerfile"} if git_context else {"path": "Dockerfile"},
        "request": {
            "frontend": "gateway.v0",
            "args": {"source": "docker/dockerfile:1.12", "platform": "linux/amd64,linux/arm64", "label:org.opencontainers.image.source": f"https://github.com/{REPO}"},
            "locals": [] if git_context else [{"name": "context"}, {"name": "dockerfile"}],
            "secrets": [{"id": "GIT_AUTH_TOKEN", "optional": True}],
            "ssh": [],
        },
    }
    deps = [FRONTEND, GOLANG, DISTROLESS]
    if git_context:
        deps.append({"uri": GIT_CONTEXT, "digest": {"sha1": COMMIT}})
    meta = {
        "invocationID": "x8h2m4k1c9q0v7b3n5p6r2t1w",
        "startedOn": "2026-11-24T09:08:02.115389Z",
        "finishedOn": "2026-11-24T09:11:47.902114Z",
        "buildkit_completeness": {"request": True, "resolvedDependencies": git_context},
        "buildkit_hermetic": False,
        "buildkit_reproducible": False,
        "buildkit_metadata": {
            "vcs": {"source": f"https://github.com/{REPO}", "revision": COMMIT},
        },
    }
    if infos:
        meta["buildkit_metadata"]["source"] = {
            "infos": [{"filename": "Dockerfile", "language": "Dockerfile", "data": base64.b64encode(DOCKERFILE).decode()}],
            "locations": {},
        }
    return {
        "buildDefinition": {
            "buildType": "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md",
            "externalParameters": ext,
            "internalParameters": {"builderPlatform": "linux/amd64"},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1"},
            "metadata": meta,
        },
    }

def buildkit_v02():
    return {
        "builder": {"id": f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1"},
        "buildType": "https://mobyproject.org/buildkit@v1",
        "materials": [FRONTEND, GOLANG, DISTROLESS, {"uri": GIT_CONTEXT, "digest": {"sha1": COMMIT}}],
        "invocation": {
            "configSource": {"uri": GIT_CONTEXT, "digest": {"sha1": COMMIT}, "entryPoint": "Dockerfile"},
            "parameters": {"frontend": "gateway.v0", "args": {"source": "docker/dockerfile:1.12"}, "locals": []},
            "environment": {"platform": "linux/amd64"},
        },
        "metadata": {
            "buildInvocationID": "x8h2m4k1c9q0v7b3n5p6r2t1w",
            "buildStartedOn": "2026-11-24T09:08:02.115389Z",
            "buildFinishedOn": "2026-11-24T09:11:47.902114Z",
            "completeness": {"parameters": True, "environment": True, "materials": True},
            "reproducible": False,
            "https://mobyproject.org/buildkit@v1#metadata": {"vcs": {"source": f"https://github.com/{REPO}", "revision": COMMIT}},
        },
    }

def buildkit_subject_name(platform):
    return f"pkg:docker/{IMAGE_NAME}@1.8.3?platform={platform.replace('/', '%2F')}"

CDX = "https://cyclonedx.org/bom"
SPDX = "https://spdx.dev/Document"

def cyclonedx():
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "urn:uuid:5b0f7c3e-8e7d-4c55-9d1c-2f0b3c1e9a71",
        "version": 1,
        "metadata": {
            "timestamp": "2026-11-24T09:12:05Z",
            "tools": {"components": [{"type": "application", "author": "anchore", "name": "syft", "version": "1.17.0"}]},
            "component": {"bom-ref": "image", "type": "container", "name": IMAGE_NAME, "version": INDEX},
        },
        "components": [
            {"bom-ref": "pkg:golang/github.com/acme/payments-api@v1.8.3", "type": "library", "name": "github.com/acme/payments-api", "version": "v1.8.3", "purl": "pkg:golang/github.com/acme/payments-api@v1.8.3"},
            {"bom-ref": "pkg:golang/golang.org/x/net@v0.31.0", "type": "library", "name": "golang.org/x/net", "version": "v0.31.0", "purl": "pkg:golang/golang.org/x/net@v0.31.0", "licenses": [{"license": {"id": "BSD-3-Clause"}}]},
            {"bom-ref": "pkg:deb/debian/base-files@12.4+deb12u8", "type": "library", "name": "base-files", "version": "12.4+deb12u8", "purl": "pkg:deb/debian/base-files@12.4%2Bdeb12u8?arch=amd64&distro=debian-12"},
        ],
    }

def spdx():
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": IMAGE_NAME,
        "documentNamespace": "https://anchore.com/syft/image/ghcr.io/acme/payments-api-3f1c9a2e-6d0b-4f6e-9a8c-1d2e3f4a5b6c",
        "creationInfo": {"creators": ["Organization: Anchore, Inc", "Tool: syft-1.17.0"], "created": "2026-11-24T09:12:05Z"},
        "packages": [
            {"name": "golang.org/x/net", "SPDXID": "SPDXRef-Package-go-module-golang.org-x-net-7a1c", "versionInfo": "v0.31.0", "downloadLocation": "NOASSERTION",
             "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:golang/golang.org/x/net@v0.31.0"}]},
        ],
        "relationships": [],
    }

VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
INTOTO_VULNS = "https://in-toto.io/attestation/vulns/v0.1"
OPENVEX = "https://openvex.dev/ns/v0.2.0"

EXPAT_PURL = "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64&distro=3.20.3"

def trivy_vuln(vid, pkg, purl, installed, fixed, severity, title):
    return {
        "VulnerabilityID": vid,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": purl, "UID": h(vid + pkg)[:16]},
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Status": "fixed" if fixed else "affected",
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{vid.lower()}",
        "Title": title,
        "Severity": severity,
    }

def trivy(vulns, finished="2026-11-24T09:12:18Z"):
    result = {
        "SchemaVersion": 2,
        "CreatedAt": finished,
        "ArtifactName": f"{IMAGE_NAME}@{INDEX}",
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "alpine", "Name": "3.20.3"}, "ImageID": d("config"), "RepoDigests": [f"{IMAGE_NAME}@{INDEX}"]},
        "Results": [
            {"Target": f"{IMAGE_NAME}@{INDEX} (alpine 3.20.3)", "Class": "os-pkgs", "Type": "alpine", **({"Vulnerabilities": vulns} if vulns else {})},
            {"Target": "payments-api", "Class": "lang-pkgs", "Type": "gobinary"},
        ],
    }
    return {
        "invocation": {"parameters": None, "uri": f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1", "event_id": RUN_ID, "builder.id": "github-actions"},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@0.57.1",
            "version": "0.57.1",
            "db": {"uri": "", "version": ""},
            "result": result,
        },
        "metadata": {"scanStartedOn": "2026-11-24T09:12:09Z", "scanFinishedOn": finished},
    }

def grype(matches, finished="2026-11-24T09:12:18Z"):
    return {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:github/anchore/grype@0.84.0",
            "version": "0.84.0",
            "db": {"uri": "", "version": "5"},
            "result": {
                "matches": matches,
                "source": {"type": "image", "target": {"userInput": f"{IMAGE_NAME}@{INDEX}"}},
                "descriptor": {"name": "grype", "version": "0.84.0"},
            },
        },
        "metadata": {"scanStartedOn": "2026-11-24T09:12:09Z", "scanFinishedOn": finished},
    }

def grype_match(vid, severity, name, version, purl, fix=None, related=()):
    return {
        "vulnerability": {"id": vid, "dataSource": f"https://github.com/advisories/{vid}", "namespace": "github:language:go", "severity": severity,
                          "fix": {"versions": [fix] if fix else [], "state": "fixed" if fix else "not-fixed"}},
        "relatedVulnerabilities": [{"id": r, "dataSource": f"https://nvd.nist.gov/vuln/detail/{r}", "namespace": "nvd:cpe", "severity": severity} for r in related],
        "matchDetails": [{"type": "exact-direct-match", "matcher": "go-module-matcher"}],
        "artifact": {"id": h(purl)[:16], "name": name, "version": version, "type": "go-module", "purl": purl},
    }

def intoto_vulns(results, finished="2026-11-24T09:12:18Z"):
    return {
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@0.57.1",
            "version": "0.57.1",
            "db": {"uri": "pkg:github/aquasecurity/trivy-db/commit/4c76bb580b2736d67751410fa4ab66d2b6b9b27d", "version": "v2-2026112406"},
            "result": results,
        },
        "metadata": {"scanStartedOn": "2026-11-24T09:12:09Z", "scanFinishedOn": finished},
    }

def openvex(statements, timestamp="2026-11-24T15:30:00Z"):
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://openvex.dev/docs/public/vex-5e7f4b0c7a1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f",
        "author": "Acme Product Security <psirt@acme.example>",
        "timestamp": timestamp,
        "version": 1,
        "tooling": "vexctl/0.3.0",
        "statements": statements,
    }

def vex_statement(vuln, status, justification=None, subcomponent="pkg:apk/alpine/expat@2.6.2-r0", digest=INDEX):
    st = {
        "vulnerability": {"name": vuln},
        "timestamp": "2026-11-24T15:30:00Z",
        "products": [{"@id": f"pkg:oci/payments-api@{digest.replace(':', '%3A')}?repository_url=ghcr.io%2Facme%2Fpayments-api",
                      "subcomponents": [{"@id": subcomponent}]}],
        "status": status,
    }
    if justification:
        st["justification"] = justification
        st["impact_statement"] = "payments-api never parses XML; expat is only present in the base image"
    return st

def write(path, doc):
    full = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")

# --- contracts' default parameters ------------------------------------------

SLSA_PARAMS = {
    "builderIds": ["https://github.com/*/.github/workflows/*", "https://github.com/*/actions/runs/*"],
    "buildTypes": [
        "https://actions.github.io/buildtypes/workflow/v1",
        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
        "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md",
        "https://mobyproject.org/buildkit@v1",
    ],
    "sourceRepositories": ["https://github.com/*"],
    "requireKeyless": True,
    "requireTlog": True,
}
SBOM_PARAMS = {"formats": ["cyclonedx", "spdx"]}
DOCKERFILE_PARAMS = {"ignoredImages": ["docker.io/docker/dockerfile", "docker.io/docker/dockerfile-upstream", "docker.io/docker/buildkit-syft-scanner"]}
VULN_PARAMS = {"maxAgeDays": 7, "severity": "critical"}
SIGNED_PARAMS = {}
AGE_PARAMS = {"warnDays": 30, "denyDays": 90, "predicateTypes": []}

gha_prov = attestation(SLSA1, gha_provenance(), label="gha provenance", index=151234567)
bk_v1 = attestation(SLSA1, buildkit_v1(), subject=AMD64, name=buildkit_subject_name("linux/amd64"),
                    when="2026-11-24T09:12:52Z", label="buildkit v1 amd64", index=151234619)
bk_v1_local = attestation(SLSA1, buildkit_v1(git_context=False, infos=True), subject=AMD64, name=buildkit_subject_name("linux/amd64"),
                          when="2026-11-24T09:12:52Z", label="buildkit v1 local amd64", index=151234620)
bk_v02 = attestation(SLSA02, buildkit_v02(), subject=AMD64, name=buildkit_subject_name("linux/amd64"),
                     when="2026-11-24T09:12:52Z", label="buildkit v02 amd64", index=151234621,
                     statement_type="https://in-toto.io/Statement/v0.1")
sbom_cdx = attestation(CDX, cyclonedx(), when="2026-11-24T09:12:44Z", label="cyclonedx index", index=151234588)
sbom_spdx = attestation(SPDX, spdx(), subject=AMD64, when="2026-11-24T09:12:45Z", label="spdx amd64", index=151234589,
                        statement_type="https://in-toto.io/Statement/v0.1", source="cosign-att")
scan_clean = attestation(VULN, trivy([]), when="2026-11-24T09:12:30Z", label="trivy clean", index=151234577)
expat = trivy_vuln("CVE-2024-45491", "expat", EXPAT_PURL, "2.6.2-r0", "2.6.3-r0", "CRITICAL",
                   "libexpat: Integer Overflow or Wraparound")
busybox = trivy_vuln("CVE-2023-42363", "busybox", "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=3.20.3",
                     "1.36.1-r29", "", "MEDIUM", "busybox: use-after-free in awk")
scan_critical = attestation(VULN, trivy([expat, busybox]), when="2026-11-24T09:12:30Z", label="trivy critical", index=151234578)
sig = cosign_signature()

def main():
    # slsa-provenance
    write("policies/slsa-provenance/testdata/github-actions.json",
          policy_input("slsa-provenance", "1", SLSA_PARAMS, [gha_prov, sbom_cdx], [sig]))
    write("policies/slsa-provenance/testdata/buildkit-v1.json",
          policy_input("slsa-provenance", "1", SLSA_PARAMS, [bk_v1]))
    write("policies/slsa-provenance/testdata/buildkit-v02.json",
          policy_input("slsa-provenance", "1", SLSA_PARAMS, [bk_v02]))
    write("policies/slsa-provenance/testdata/no-provenance.json",
          policy_input("slsa-provenance", "1", SLSA_PARAMS, [sbom_cdx, scan_clean], [sig]))

    # sbom-required
    write("policies/sbom-required/testdata/cyclonedx.json",
          policy_input("sbom-required", "1", SBOM_PARAMS, [gha_prov, sbom_cdx], [sig]))
    write("policies/sbom-required/testdata/spdx-platform.json",
          policy_input("sbom-required", "1", SBOM_PARAMS, [sbom_spdx]))
    other = attestation(CDX, cyclonedx(), subject=OTHER, when="2026-11-20T14:02:11Z", label="cyclonedx 1.8.2", index=150998812)
    write("policies/sbom-required/testdata/other-digest.json",
          policy_input("sbom-required", "1", SBOM_PARAMS, [other, gha_prov]))
    write("policies/sbom-required/testdata/vuln-only.json",
          policy_input("sbom-required", "1", SBOM_PARAMS, [scan_clean, gha_prov], [sig]))

    # dockerfile-and-base-image
    write("policies/dockerfile-and-base-image/testdata/buildkit-git-context.json",
          policy_input("dockerfile-and-base-image", "1", DOCKERFILE_PARAMS, [gha_prov, bk_v1]))
    write("policies/dockerfile-and-base-image/testdata/buildkit-local-context.json",
          policy_input("dockerfile-and-base-image", "1", DOCKERFILE_PARAMS, [bk_v1_local]))
    write("policies/dockerfile-and-base-image/testdata/buildkit-v02.json",
          policy_input("dockerfile-and-base-image", "1", DOCKERFILE_PARAMS, [bk_v02]))
    write("policies/dockerfile-and-base-image/testdata/github-only.json",
          policy_input("dockerfile-and-base-image", "1", DOCKERFILE_PARAMS, [gha_prov, sbom_cdx], [sig]))

    # vuln-threshold
    write("policies/vuln-threshold/testdata/trivy-clean.json",
          policy_input("vuln-threshold", "1", VULN_PARAMS, [scan_clean, gha_prov]))
    write("policies/vuln-threshold/testdata/trivy-critical.json",
          policy_input("vuln-threshold", "1", VULN_PARAMS, [scan_critical]))
    vex = attestation(OPENVEX, openvex([vex_statement("CVE-2024-45491", "not_affected", "vulnerable_code_not_in_execute_path")]),
                      when="2026-11-24T15:31:07Z", label="openvex", index=151301442)
    write("policies/vuln-threshold/testdata/trivy-critical-vex.json",
          policy_input("vuln-threshold", "1", VULN_PARAMS, [scan_critical, vex]))
    gr = attestation(VULN, grype([
        grype_match("GHSA-w32m-9786-jp63", "High", "golang.org/x/net", "v0.31.0", "pkg:golang/golang.org/x/net@v0.31.0",
                    fix="0.33.0", related=["CVE-2024-45338"]),
    ]), when="2026-11-24T09:12:33Z", label="grype high", index=151234580)
    write("policies/vuln-threshold/testdata/grype-high.json",
          policy_input("vuln-threshold", "1", VULN_PARAMS, [gr]))
    iv = attestation(INTOTO_VULNS, intoto_vulns([
        {"id": "CVE-2024-45491", "severity": [{"method": "nvd", "score": "9.8"}, {"method": "cvss_score", "score": "9.8"}],
         "annotations": [{"package": "expat", "installedVersion": "2.6.2-r0", "fixedVersion": "2.6.3-r0"}]},
        {"id": "CVE-2023-42363", "severity": [{"method": "nvd", "score": "5.5"}]},
    ]), when="2026-11-24T09:12:34Z", label="intoto vulns", index=151234581)
    write("policies/vuln-threshold/testdata/intoto-vulns.json",
          policy_input("vuln-threshold", "1", VULN_PARAMS, [iv]))

    # signed-by
    write("policies/signed-by/testdata/cosign-signature.json",
          policy_input("signed-by", "1", SIGNED_PARAMS, [], [sig]))
    write("policies/signed-by/testdata/attestation-only.json",
          policy_input("signed-by", "1", SIGNED_PARAMS, [sbom_spdx]))
    write("policies/signed-by/testdata/no-evidence.json",
          policy_input("signed-by", "1", SIGNED_PARAMS, [], []))
    ksig = cosign_signature(signer=key_signer())
    ksig["authority"] = "release-key"
    ksig["time"] = {"source": "none"}
    ksig["tlog"] = []
    write("policies/signed-by/testdata/key-signed.json",
          policy_input("signed-by", "1", SIGNED_PARAMS, [], [ksig]))

    # max-age
    write("policies/max-age/testdata/fresh.json",
          policy_input("max-age", "1", AGE_PARAMS, [gha_prov, sbom_cdx], [sig]))
    aging_sig = cosign_signature(when="2026-10-12T16:40:05Z", index=141117730)
    aging_prov = attestation(SLSA1, gha_provenance(), label="gha provenance aging", when="2026-10-12T16:39:51Z", index=141117702)
    write("policies/max-age/testdata/aging.json",
          policy_input("max-age", "1", AGE_PARAMS, [aging_prov], [aging_sig]))
    stale_sig = cosign_signature(when="2026-07-30T08:01:12Z", index=121554020)
    write("policies/max-age/testdata/stale.json",
          policy_input("max-age", "1", AGE_PARAMS, [], [stale_sig]))
    write("policies/max-age/testdata/no-trusted-time.json",
          policy_input("max-age", "1", AGE_PARAMS, [], [ksig]))

    # docs example: everything at once
    tsa_sbom = copy.deepcopy(sbom_spdx)
    tsa_sbom["time"] = {"source": "rfc3161", "value": "2026-11-24T09:12:46Z"}
    tsa_sbom["tlog"] = []
    tsa_sbom["signer"] = gha_signer(root="github")
    tsa_sbom["authority"] = "github-actions-private"
    example = policy_input("slsa-provenance", "1", SLSA_PARAMS, [gha_prov, bk_v1, sbom_cdx, tsa_sbom, scan_critical, vex], [sig, ksig])
    example["context"]["namespaceLabels"] = {"kubernetes.io/metadata.name": "payments", "provgate.dev/tier": "production"}
    write("docs/examples/policy-input.json", example)

main()
