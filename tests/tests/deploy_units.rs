//! The shipped deployment files: the systemd units pass `systemd-analyze verify` and stay
//! under their exposure limit in `systemd-analyze security`; the Kubernetes base lints, parses,
//! lists every file, and holds CronJobs that match the systemd schedules and the config.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy() -> PathBuf {
    kyb_testkit::workspace_root().join("deploy")
}

/// Runs `program` with `args`, or panics naming the Debian package that provides it.
fn run<I, S>(program: &str, package: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install Debian `{package}` (apt-get install {package})")
    })
}

/// Stdout and stderr, for assertions and their messages.
fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The files directly in `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(OsStr::to_str).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    out.sort();
    out
}

fn name(path: &Path) -> &str {
    path.file_name().and_then(OsStr::to_str).unwrap()
}

mod systemd {
    use super::*;

    /// The limit of every maintenance unit and of the failure hook.
    const MAX_EXPOSURE: f64 = 5.0;

    /// The updater's own limit. It is allowed more than the others (CAP_CHOWN, CAP_FOWNER and
    /// CAP_DAC_OVERRIDE to replace the app's binary and configs, chown(2), writable executable
    /// memory for the release's check command), and still scores under the same 5.0; the limit
    /// stays there so that loosening it further is a decision, not an accident.
    const UPDATER_MAX_EXPOSURE: f64 = 5.0;

    fn dir() -> PathBuf {
        deploy().join("systemd")
    }

    fn services() -> Vec<PathBuf> {
        let found = files(&dir(), ".service");
        assert!(found.len() >= 6, "{found:?}");
        found
    }

    /// The values of `key=` in `unit`, in order.
    fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    // Every service and timer passes `systemd-analyze verify` without a word. The units start
    // /usr/local/bin/kyb-*, which this machine lacks, so each is verified as a copy whose
    // ExecStart= names a stand-in of the same name; nothing else is changed or filtered.
    #[test]
    fn every_unit_verifies_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let mut units = services();
        units.extend(files(&dir(), ".timer"));
        for unit in &units {
            let mut text = String::new();
            for line in read(unit).lines() {
                let line = match line.strip_prefix("ExecStart=/usr/local/bin/") {
                    Some(rest) => {
                        let program = rest.split_whitespace().next().unwrap();
                        let stub = bin.join(program);
                        std::fs::write(&stub, "#!/bin/sh\n").unwrap();
                        set_executable(&stub);
                        format!("ExecStart={}/{rest}", bin.display())
                    }
                    None => line.to_owned(),
                };
                text.push_str(&line);
                text.push('\n');
            }
            std::fs::write(tmp.path().join(name(unit)), text).unwrap();
        }
        let mut failed = Vec::new();
        for unit in &units {
            let out = run(
                "systemd-analyze",
                "systemd",
                [OsStr::new("verify"), tmp.path().join(name(unit)).as_os_str()],
            );
            if !out.status.success() || !said(&out).trim().is_empty() {
                failed.push(format!("{}: {}", name(unit), said(&out)));
            }
        }
        assert!(failed.is_empty(), "systemd-analyze verify:\n{}", failed.join("\n"));

        // The check can fail: a key systemd does not know is reported.
        let bogus = tmp.path().join("kyb-bogus.service");
        std::fs::write(&bogus, "[Service]\nType=oneshot\nExecStart=/bin/true\nTimeoutStartSc=1min\n")
            .unwrap();
        let out = run("systemd-analyze", "systemd", [OsStr::new("verify"), bogus.as_os_str()]);
        assert!(said(&out).contains("TimeoutStartSc"), "{}", said(&out));
    }

    fn set_executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The overall exposure `systemd-analyze security --offline=true` gives `unit`.
    fn exposure(unit: &Path) -> f64 {
        let out = run(
            "systemd-analyze",
            "systemd",
            [OsStr::new("security"), OsStr::new("--offline=true"), unit.as_os_str()],
        );
        let text = said(&out);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level for "))
            .unwrap_or_else(|| panic!("{}: no overall exposure in:\n{text}", unit.display()));
        let value = line.rsplit_once(": ").and_then(|(_, v)| v.split_whitespace().next());
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: cannot read {line:?}", unit.display()))
    }

    // Every service stays under its exposure limit; the updater has one of its own.
    #[test]
    fn every_service_is_under_its_exposure_limit() {
        let mut seen = Vec::new();
        for unit in services() {
            let limit =
                if name(&unit).starts_with("kyb-update-") { UPDATER_MAX_EXPOSURE } else { MAX_EXPOSURE };
            let score = exposure(&unit);
            seen.push((name(&unit).to_owned(), score, limit));
        }
        let over: Vec<_> = seen.iter().filter(|(_, score, limit)| score > limit).collect();
        assert!(over.is_empty(), "over the limit (unit, exposure, limit): {over:?}; all: {seen:?}");
    }

    // Every service reports its failure through the shipped OnFailure= template, which has no
    // hook of its own (a failing hook would start itself again).
    #[test]
    fn every_service_names_the_failure_hook() {
        let hook = "kyb-maint-failure@.service";
        assert!(dir().join(hook).is_file(), "{hook} is not shipped");
        for unit in services() {
            let text = read(&unit);
            let hooks = values(&text, "OnFailure");
            if name(&unit) == hook {
                assert!(hooks.is_empty(), "{hook}: {hooks:?}");
            } else {
                assert_eq!(hooks, ["kyb-maint-failure@%n.service"], "{}", unit.display());
            }
        }
    }

    // Every timer starts a shipped service, and nothing starts the updater on a schedule.
    #[test]
    fn every_timer_starts_a_shipped_service() {
        let timers = files(&dir(), ".timer");
        assert_eq!(timers.len(), 4, "{timers:?}");
        for timer in timers {
            let text = read(&timer);
            let service = values(&text, "Unit")
                .first()
                .map_or_else(|| name(&timer).replace(".timer", ".service"), |u| (*u).to_owned());
            assert!(dir().join(&service).is_file(), "{}: {service} is not shipped", timer.display());
            assert!(!service.starts_with("kyb-update-"), "{}: the updater runs by hand", timer.display());
        }
    }

    // Only the daily flow sees the host's /tmp, whose kyb-* files it cleans up; every other
    // service gets a private one, and every service has a read-only system with explicit
    // writable paths.
    #[test]
    fn only_the_daily_flow_sees_the_real_tmp() {
        for unit in services() {
            let text = read(&unit);
            let private_tmp = values(&text, "PrivateTmp");
            if name(&unit) == "kyb-maint-daily.service" {
                assert_eq!(private_tmp, ["no"], "{}", unit.display());
                assert!(
                    values(&text, "ReadWritePaths").iter().any(|v| v.split_whitespace().any(|p| p == "/tmp"))
                );
            } else {
                assert_eq!(private_tmp, ["yes"], "{}", unit.display());
            }
            let protect = values(&text, "ProtectSystem");
            let expected = if name(&unit).starts_with("kyb-maint-failure@") { "full" } else { "strict" };
            assert_eq!(protect, [expected], "{}", unit.display());
            if expected == "strict" {
                assert!(!values(&text, "ReadWritePaths").is_empty(), "{}", unit.display());
            }
        }
    }
}

mod kubernetes {
    use super::*;
    use yaml_rust2::{Yaml, YamlLoader};

    fn dir() -> PathBuf {
        deploy().join("kubernetes")
    }

    fn base() -> PathBuf {
        dir().join("base")
    }

    /// Every file under `dir`, recursively, sorted.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
        }
        out.sort();
        out
    }

    fn yaml_files() -> Vec<PathBuf> {
        let found: Vec<PathBuf> = walk(&dir())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") || name(p) == ".yamllint")
            .collect();
        assert!(found.len() >= 8, "{found:?}");
        found
    }

    fn load(path: &Path) -> Vec<Yaml> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn kustomization() -> Yaml {
        load(&base().join("kustomization.yaml")).remove(0)
    }

    fn strs(y: &Yaml) -> Vec<&str> {
        y.as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default()
    }

    /// The documents of every file the kustomization lists under `resources`.
    fn resources() -> Vec<Yaml> {
        let k = kustomization();
        strs(&k["resources"]).iter().flat_map(|r| load(&base().join(r))).collect()
    }

    fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name} in the base"))
    }

    /// The string value of `key = "..."` in a TOML text, for the paths the mounts must match.
    fn toml_string(text: &str, key: &str) -> String {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?.split('"').nth(1))
            .next()
            .unwrap_or_else(|| panic!("no {key} in the ConfigMap's kyb-maint.toml"))
            .to_owned()
    }

    fn config_text() -> String {
        std::fs::read_to_string(base().join("configmap/kyb-maint.toml")).unwrap()
    }

    /// The Secret's example file: variable names and values.
    fn secret_env() -> Vec<(String, String)> {
        let k = kustomization();
        let gens = k["secretGenerator"].as_vec().expect("a secretGenerator");
        let file = strs(&gens[0]["envs"]).first().copied().expect("an envs file");
        let text = std::fs::read_to_string(base().join(file)).unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{file}: {l}"));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// What each CronJob must be: name, schedule, the systemd unit whose TimeoutStartSec is its
    /// deadline (or the deadline itself), words of its command line, and the claims it mounts.
    struct Expected {
        name: &'static str,
        schedule: &'static str,
        unit: Option<&'static str>,
        deadline_secs: i64,
        runs: &'static [&'static str],
        claims: &'static [&'static str],
    }

    const BACKUPS: &str = "kyb-maint-backups";
    const MAINTENANCE: &str = "kyb-maint-maintenance";

    const CRONJOBS: &[Expected] = &[
        Expected {
            name: "kyb-backup-nightly",
            schedule: "30 1 * * *",
            unit: Some("kyb-backup-nightly.service"),
            deadline_secs: 7200,
            runs: &["/usr/local/bin/kyb-backup", "create"],
            claims: &[BACKUPS],
        },
        Expected {
            name: "kyb-maint-daily",
            schedule: "0 2 * * *",
            unit: Some("kyb-maint-daily.service"),
            deadline_secs: 900,
            runs: &["/usr/local/bin/kyb-maint", "daily"],
            claims: &[BACKUPS, MAINTENANCE],
        },
        Expected {
            name: "kyb-maint-weekly",
            schedule: "30 2 * * 0",
            unit: Some("kyb-maint-weekly.service"),
            deadline_secs: 7200,
            runs: &["/usr/local/bin/kyb-maint", "weekly"],
            claims: &[MAINTENANCE],
        },
        // Every Sunday, going on only on the 1st to the 7th: cron ORs day of month and week.
        Expected {
            name: "kyb-maint-monthly",
            schedule: "0 4 * * 0",
            unit: Some("kyb-maint-monthly.service"),
            deadline_secs: 14400,
            runs: &["/usr/local/bin/kyb-maint", "monthly", "date -u +%d)\" -gt 7"],
            claims: &[BACKUPS, MAINTENANCE],
        },
        // The restore drill until `kyb-maint quarterly` exists; as long as the monthly run.
        Expected {
            name: "kyb-maint-quarterly",
            schedule: "0 5 15 1,4,7,10 *",
            unit: None,
            deadline_secs: 14400,
            runs: &["/usr/local/bin/kyb-backup", "restore-drill"],
            claims: &[BACKUPS],
        },
    ];

    /// `TimeoutStartSec=` of a shipped systemd unit, in seconds.
    fn systemd_timeout_secs(unit: &str) -> i64 {
        let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
        let value = text.lines().find_map(|l| l.strip_prefix("TimeoutStartSec=")).expect(unit);
        let (number, scale) = if let Some(n) = value.strip_suffix("min") {
            (n, 60)
        } else if let Some(n) = value.strip_suffix('h') {
            (n, 3600)
        } else {
            (value.strip_suffix('s').unwrap_or(value), 1)
        };
        number.parse::<i64>().unwrap_or_else(|_| panic!("{unit}: TimeoutStartSec={value}")) * scale
    }

    fn pod(cronjob: &Yaml) -> &Yaml {
        &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    }

    fn containers(cronjob: &Yaml) -> &[Yaml] {
        pod(cronjob)["containers"].as_vec().map(Vec::as_slice).unwrap_or_default()
    }

    // yamllint -s, with the shipped .yamllint, passes on every YAML file under deploy/kubernetes.
    #[test]
    fn yamllint_is_clean() {
        let config = dir().join(".yamllint");
        let out = run(
            "yamllint",
            "yamllint",
            [OsStr::new("-s"), OsStr::new("-c"), config.as_os_str(), dir().as_os_str()],
        );
        assert!(out.status.success() && said(&out).trim().is_empty(), "yamllint:\n{}", said(&out));
    }

    // Every YAML file parses, and every manifest names its apiVersion, kind and name.
    #[test]
    fn every_yaml_file_parses() {
        for path in yaml_files() {
            let docs = load(&path);
            assert!(!docs.is_empty(), "{}: empty", path.display());
            if name(&path) == ".yamllint" {
                continue;
            }
            for doc in &docs {
                assert!(doc["apiVersion"].as_str().is_some(), "{}: no apiVersion", path.display());
                assert!(doc["kind"].as_str().is_some(), "{}: no kind", path.display());
                if doc["kind"].as_str() != Some("Kustomization") {
                    assert!(doc["metadata"]["name"].as_str().is_some(), "{}: no name", path.display());
                }
            }
        }
    }

    // kustomization.yaml names every file of the base (resources and generator inputs), and
    // only files that exist.
    #[test]
    fn the_kustomization_lists_every_file() {
        let k = kustomization();
        let mut listed: Vec<&str> = strs(&k["resources"]);
        for generator in ["configMapGenerator", "secretGenerator"] {
            for g in k[generator].as_vec().map(Vec::as_slice).unwrap_or_default() {
                listed.extend(strs(&g["files"]));
                listed.extend(strs(&g["envs"]));
            }
        }
        let mut listed: Vec<PathBuf> = listed.iter().map(|f| base().join(f)).collect();
        listed.sort();
        let present: Vec<PathBuf> = walk(&base())
            .into_iter()
            .filter(|p| !matches!(name(p), "kustomization.yaml" | "README.md"))
            .collect();
        assert_eq!(listed, present, "listed in kustomization.yaml vs present in {}", base().display());
    }

    // The five CronJobs: their schedules, no overlap with themselves, no retries, a deadline
    // equal to the systemd unit's timeout, resources, and a locked-down pod.
    #[test]
    fn the_cronjobs_match_the_timers_and_are_locked_down() {
        let docs = resources();
        let cronjobs: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some("CronJob"))
            .filter_map(|d| d["metadata"]["name"].as_str())
            .collect();
        assert_eq!(cronjobs.len(), CRONJOBS.len(), "{cronjobs:?}");
        for e in CRONJOBS {
            let c = find(&docs, "CronJob", e.name);
            let spec = &c["spec"];
            assert_eq!(spec["schedule"].as_str(), Some(e.schedule), "{}", e.name);
            assert_eq!(spec["timeZone"].as_str(), Some("Etc/UTC"), "{}", e.name);
            assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"), "{}", e.name);
            let job = &spec["jobTemplate"]["spec"];
            assert_eq!(job["backoffLimit"].as_i64(), Some(0), "{}", e.name);
            let deadline = e.unit.map_or(e.deadline_secs, systemd_timeout_secs);
            assert_eq!(deadline, e.deadline_secs, "{}: the systemd timeout changed", e.name);
            assert_eq!(job["activeDeadlineSeconds"].as_i64(), Some(deadline), "{}", e.name);

            let pod = pod(c);
            assert_eq!(pod["restartPolicy"].as_str(), Some("Never"), "{}", e.name);
            assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false), "{}", e.name);
            let sc = &pod["securityContext"];
            assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{}", e.name);
            assert!(sc["runAsUser"].as_i64().is_some_and(|u| u > 0), "{}: runAsUser", e.name);
            assert!(sc["fsGroup"].as_i64().is_some(), "{}: fsGroup", e.name);
            assert_eq!(sc["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"), "{}", e.name);

            let containers = containers(c);
            assert_eq!(containers.len(), 1, "{}", e.name);
            let ct = &containers[0];
            let csc = &ct["securityContext"];
            assert_eq!(csc["allowPrivilegeEscalation"].as_bool(), Some(false), "{}", e.name);
            assert_eq!(csc["readOnlyRootFilesystem"].as_bool(), Some(true), "{}", e.name);
            assert_eq!(strs(&csc["capabilities"]["drop"]), ["ALL"], "{}", e.name);
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    let value = &ct["resources"][kind][resource];
                    assert!(
                        value.as_str().is_some() || value.as_i64().is_some(),
                        "{}: {kind}.{resource}",
                        e.name
                    );
                }
            }
            let mut line: Vec<&str> = strs(&ct["command"]);
            line.extend(strs(&ct["args"]));
            let line = line.join(" ");
            for word in e.runs {
                assert!(line.contains(word), "{}: {word:?} not in {line:?}", e.name);
            }
            assert!(line.contains("--config /etc/kyb-maint/kyb-maint.toml"), "{}: {line}", e.name);
        }
    }

    // Each container's image is one the kustomization pins to a tag, and never `latest`.
    #[test]
    fn images_have_a_fixed_tag() {
        let k = kustomization();
        let pinned = k["images"].as_vec().expect("images: in kustomization.yaml");
        for img in pinned {
            let tag = img["newTag"].as_str().unwrap_or_default();
            assert!(!tag.is_empty() && tag != "latest", "{img:?}");
        }
        for e in CRONJOBS {
            let docs = resources();
            for ct in containers(find(&docs, "CronJob", e.name)) {
                let image = ct["image"].as_str().expect("an image");
                let (image_name, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    Some((n, t)) => (n, Some(t)),
                    None => (image, None),
                };
                assert_ne!(tag, Some("latest"), "{}: {image}", e.name);
                assert!(
                    pinned.iter().any(|p| p["name"].as_str() == Some(image_name)),
                    "{}: {image} is not pinned by kustomization.yaml images",
                    e.name
                );
            }
        }
    }

    // The volumes: each claim exists, is mounted where the config's paths point, the config
    // comes from the generated ConfigMap, and /tmp is an emptyDir.
    #[test]
    fn the_volumes_match_the_config() {
        let docs = resources();
        let config = config_text();
        let path_of = |claim: &str| match claim {
            BACKUPS => toml_string(&config, "backup_dir"),
            MAINTENANCE => toml_string(&config, "maintenance_dir"),
            _ => panic!("unexpected claim {claim}"),
        };
        for claim in [BACKUPS, MAINTENANCE] {
            find(&docs, "PersistentVolumeClaim", claim);
        }
        let generated = kustomization()["configMapGenerator"][0]["name"].as_str().unwrap().to_owned();
        for e in CRONJOBS {
            let c = find(&docs, "CronJob", e.name);
            let volumes = pod(c)["volumes"].as_vec().expect("volumes");
            let mounts = containers(c)[0]["volumeMounts"].as_vec().expect("volumeMounts");
            let mount_of = |volume: &str| {
                mounts
                    .iter()
                    .find(|m| m["name"].as_str() == Some(volume))
                    .unwrap_or_else(|| panic!("{}: volume {volume} not mounted", e.name))
            };
            let mut claims = Vec::new();
            for v in volumes {
                let volume = v["name"].as_str().unwrap();
                let at = mount_of(volume)["mountPath"].as_str().unwrap();
                if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
                    assert_eq!(at, path_of(claim), "{}: {claim}", e.name);
                    claims.push(claim);
                } else if let Some(map) = v["configMap"]["name"].as_str() {
                    assert_eq!((map, at), (generated.as_str(), "/etc/kyb-maint"), "{}", e.name);
                } else if at == "/tmp" {
                    assert!(!v["emptyDir"].is_badvalue(), "{}: /tmp is not an emptyDir", e.name);
                }
            }
            claims.sort();
            assert_eq!(claims, e.claims, "{}", e.name);
            assert!(mounts.iter().any(|m| m["mountPath"].as_str() == Some("/tmp")), "{}: no /tmp", e.name);
        }
    }

    // The passwords the config reads through password_env come from the Secret in every job.
    #[test]
    fn the_passwords_come_from_the_secret() {
        let config = config_text();
        let wanted: Vec<String> = config
            .lines()
            .filter(|l| l.trim_start().starts_with("password_env"))
            .map(|l| l.split('"').nth(1).unwrap().to_owned())
            .collect();
        assert_eq!(wanted, ["DB_PASSWORD", "REDIS_PASSWORD"]);
        let secret = secret_env();
        let secret_name = kustomization()["secretGenerator"][0]["name"].as_str().unwrap().to_owned();
        let docs = resources();
        for e in CRONJOBS {
            let env = containers(find(&docs, "CronJob", e.name))[0]["env"].as_vec().expect("env");
            for var in &wanted {
                let entry = env
                    .iter()
                    .find(|v| v["name"].as_str() == Some(var))
                    .unwrap_or_else(|| panic!("{}: no {var}", e.name));
                let from = &entry["valueFrom"]["secretKeyRef"];
                assert_eq!(from["name"].as_str(), Some(secret_name.as_str()), "{}: {var}", e.name);
                let key = from["key"].as_str().unwrap();
                assert!(secret.iter().any(|(k, _)| k == key), "{}: {key} not in the Secret", e.name);
            }
        }
    }

    // The ConfigMap's kyb-maint.toml loads as a kyb-maint config. password_env must name a
    // set variable at load time, and setting one here would take unsafe code, so the test runs
    // itself again with the Secret's example values in its environment.
    #[test]
    fn the_configmap_config_loads() {
        const ME: &str = "kubernetes::the_configmap_config_loads";
        let secret = secret_env();
        if std::env::var_os("KYB_E2E_SECRET_SET").is_none() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", ME, "--test-threads=1"])
                .env("KYB_E2E_SECRET_SET", "1")
                .envs(secret.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap();
            assert!(out.status.success() && said(&out).contains("1 passed"), "{}", said(&out));
            return;
        }
        let path = base().join("configmap/kyb-maint.toml");
        let cfg = kyb_flows::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.paths.maintenance_dir, Path::new(&toml_string(&config_text(), "maintenance_dir")));
        assert_eq!(cfg.paths.backup_dir.as_deref(), Some(Path::new("/backups/database")));
        assert!(cfg.rotation.is_none() && cfg.cleanup.temp.is_none(), "nothing to rotate or clean in a pod");
    }
}
