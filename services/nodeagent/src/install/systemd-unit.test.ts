import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AGENT_CAPABILITIES, checkUnitPaths, computeAgentUnit, parseInstalledUnit } from "./systemd-unit.ts";

const base = {
  exec: "/opt/switchyard/bin/switchyard-agent",
  runArgs: ["--hub", "hub.example.com:7443", "--hub-ca-hash", "sha256:ab"],
  envFile: "/etc/switchyard/agent.env",
  stateDir: "/var/lib/switchyard-agent",
  pinDir: "/sys/fs/bpf/switchyard",
  systemdVersion: 252,
};

describe("agent systemd unit", () => {
  it("runs the agent with its state and pin dirs, the token only in the environment file", () => {
    const u = computeAgentUnit({ ...base, runArgs: [...base.runArgs] });
    assert.match(
      u,
      /^ExecStart=\/opt\/switchyard\/bin\/switchyard-agent run --hub hub.example.com:7443 --hub-ca-hash sha256:ab --state-dir \/var\/lib\/switchyard-agent --pin-dir \/sys\/fs\/bpf\/switchyard$/m,
    );
    assert.match(u, /^EnvironmentFile=\/etc\/switchyard\/agent.env$/m);
    assert.doesNotMatch(u, /token/i);
  });

  it("is hardened: restart for ever, bounded capabilities, read-only but for its paths, memlock", () => {
    const u = computeAgentUnit(base);
    for (const line of [
      "Restart=always",
      "StartLimitIntervalSec=0",
      `CapabilityBoundingSet=${AGENT_CAPABILITIES.join(" ")}`,
      `AmbientCapabilities=${AGENT_CAPABILITIES.join(" ")}`,
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/switchyard-agent -/sys/fs/bpf/switchyard",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "LimitMEMLOCK=infinity",
    ])
      assert.ok(u.split("\n").includes(line), line);
    // /sys must stay writable for bpffs: no ProtectKernelTunables
    assert.doesNotMatch(u, /^ProtectKernelTunables/m);
    assert.ok(AGENT_CAPABILITIES.includes("CAP_BPF") && AGENT_CAPABILITIES.includes("CAP_NET_ADMIN"));
  });

  it("backs off exponentially on systemd 254 and later only (older ones would warn)", () => {
    assert.doesNotMatch(computeAgentUnit(base), /^RestartSteps/m);
    const u = computeAgentUnit({ ...base, systemdVersion: 254 });
    assert.match(u, /^RestartSteps=10$/m);
    assert.match(u, /^RestartMaxDelaySec=60s$/m);
  });

  it("uninstall reads back the paths it wrote, quoted ones too", () => {
    const o = { ...base, stateDir: "/srv/sy state/100%", pinDir: '/sys/fs/bpf/sy"x' };
    assert.deepEqual(parseInstalledUnit(computeAgentUnit(o)), {
      envFile: "/etc/switchyard/agent.env",
      stateDir: "/srv/sy state/100%",
      pinDir: '/sys/fs/bpf/sy"x',
    });
  });
});

describe("checkUnitPaths: paths the unit hides from the agent", () => {
  const cases: Array<[string, Array<{ flag: string; path: string }>, RegExp | undefined]> = [
    [
      "an installation under /opt, state in /var/lib",
      [
        { flag: "--exec", path: "/opt/switchyard/bin/switchyard-agent" },
        { flag: "--state-dir", path: "/var/lib/switchyard-agent" },
      ],
      undefined,
    ],
    [
      "a checkout in /root",
      [{ flag: "--exec", path: "/root/switchyard/bin/launch" }],
      /^--exec \/root\/switchyard\/bin\/launch is under \/root, which the unit hides from the agent \(ProtectHome=yes\), so the service would fail to start: install from the release tarball/,
    ],
    [
      "a checkout in /home",
      [{ flag: "--exec", path: "/home/ann/sy/bin/launch" }],
      /under \/home.*ProtectHome=yes/,
    ],
    [
      "a state dir in /tmp",
      [{ flag: "--state-dir", path: "/tmp/sy-state" }],
      /^--state-dir \/tmp\/sy-state is under \/tmp.*PrivateTmp=yes.*give --state-dir a directory outside/,
    ],
    ["/tmpfoo is not /tmp", [{ flag: "--state-dir", path: "/tmpfoo/state" }], undefined],
  ];
  for (const [name, paths, want] of cases)
    it(name, () => {
      const r = checkUnitPaths(paths);
      if (want === undefined) assert.deepEqual(r, []);
      else {
        assert.equal(r.length, 1, r.join("\n"));
        assert.match(r[0]!, want);
      }
    });
  it("says every hidden path, not only the first (a checkout in /tmp and a state dir in /tmp)", () => {
    const r = checkUnitPaths([
      { flag: "--exec", path: "/tmp/ci/bin/launch" },
      { flag: "--state-dir", path: "/tmp/sy-state" },
      { flag: "--pin-dir", path: "/sys/fs/bpf/switchyard" },
    ]);
    assert.deepEqual(
      r.map((p) => p.split(" ")[0]),
      ["--exec", "--state-dir"],
    );
  });
});
