import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { findPodCgroups, podDirNames, podUidOfCgroupDir } from "./pod-cgroups.ts";

const UID = "1234abcd-0000-4000-8000-00000000beef";

describe("pod cgroups by UID", () => {
  it("knows kubelet's cgroupfs and systemd names for a pod", () => {
    const names = podDirNames([UID]);
    assert.equal(podUidOfCgroupDir(`pod${UID}`, names), UID);
    assert.equal(podUidOfCgroupDir(`kubepods-burstable-pod${UID.replace(/-/g, "_")}.slice`, names), UID);
    assert.equal(podUidOfCgroupDir("pod-other", names), undefined);
    assert.equal(podUidOfCgroupDir("kubepods-burstable.slice", names), undefined);
  });

  it("finds the pod's directory and its containers' under the tree, by inode, within bounds", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "sy-cg-"));
    try {
      const pod = path.join(root, "kubepods", "burstable", `pod${UID}`);
      fs.mkdirSync(path.join(pod, "ctr-a"), { recursive: true });
      fs.mkdirSync(path.join(root, "kubepods", "burstable", "pod-other", "ctr"), { recursive: true });
      const scan = findPodCgroups(root, [UID]);
      const ino = (p: string) => fs.statSync(p, { bigint: true }).ino;
      assert.deepEqual(scan.found.get(UID), [ino(pod), ino(path.join(pod, "ctr-a"))]);
      assert.equal(scan.truncated, false);
      const shallow = findPodCgroups(root, [UID], { maxDepth: 1, maxDirs: 1000 });
      assert.equal(shallow.found.size, 0);
      assert.equal(shallow.truncated, true);
      assert.equal(findPodCgroups(root, [UID], { maxDepth: 8, maxDirs: 2 }).truncated, true);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
