/**
 * `switchyard-hub cluster join|leave NAME --kubeconfig ADMIN.kubeconfig`:
 * onboard a member cluster (as `cilium clustermesh connect` and `linkerd
 * multicluster link` do): a ServiceAccount with the hub's read-only role in
 * the member, a scoped kubeconfig for the hub, and the cluster in the hub's
 * config file (which a running hub reloads by itself).
 */
import fs from "node:fs";
import path from "node:path";
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { parseDuration } from "@switchyard/lib/duration";
import { applyMemberObjects, deleteMemberObjects, loadAdminKubeconfig } from "../onboard/kube-onboard.ts";
import {
  checkMemberNames,
  computeConfigWithCluster,
  computeConfigWithoutCluster,
  computeMemberObjects,
  computeScopedKubeconfig,
} from "../onboard/member-objects.ts";

const HELP = `switchyard-hub cluster — add a member cluster to the hub, or take it away

Usage:
  switchyard-hub cluster join NAME --kubeconfig ADMIN.kubeconfig [--out FILE] [--config HUB.yaml] [flags]
  switchyard-hub cluster leave NAME --kubeconfig ADMIN.kubeconfig [--out FILE] [--config HUB.yaml] [flags]

join, with the member cluster's admin kubeconfig (its current context),
creates there: the namespace (default switchyard), a ServiceAccount, the
hub's read-only ClusterRole (list/watch on what the hub watches, patch on
its policies' status: the rules of deploy/rbac/hub.yaml, from the same
source) bound to it, and a long-lived token Secret
(kubernetes.io/service-account-token). Once the cluster's token controller
has filled the token, it writes FILE (0600): a kubeconfig with the API
server and CA of ADMIN.kubeconfig and the ServiceAccount's token, nothing of
the admin's. With --config, NAME is added to the hub's config file (or its
kubeconfig path updated; comments kept), and a running hub watching that
file starts watching the cluster; without it, serve with
--cluster NAME=kubeconfig:FILE. Running join again brings the role up to
date and keeps the token.

leave deletes what join made (the objects labelled
app.kubernetes.io/managed-by=switchyard-hub; a namespace, ServiceAccount or
role that was there before is left), removes NAME from --config (and from
other clusters' imports) and deletes its kubeconfig file.

Flags:
  --kubeconfig FILE      the member cluster's admin kubeconfig (required; never stored)
  --out FILE             the hub's kubeconfig for the member (default: NAME.kubeconfig beside
                         --config, else /etc/switchyard/NAME.kubeconfig)
  --config FILE          the hub's config file to register the cluster in (or remove it from)
  --server URL           the API server address written for the hub (default: the admin kubeconfig's;
                         give it when that is loopback or otherwise not what the hub reaches, e.g. a
                         K3s kubeconfig's https://127.0.0.1:6443)
  --namespace NS         the member namespace of the ServiceAccount (default switchyard)
  --service-account SA   its name, also the ClusterRole's (default switchyard-hub)
  --timeout DURATION     how long join waits for the token (default 30s)
`;

export const clusterCommand: Command = {
  name: "cluster",
  summary: [
    ["cluster join NAME --kubeconfig F", "onboard a member cluster: read-only ServiceAccount, kubeconfig"],
    ["cluster leave NAME --kubeconfig F", "remove what join made"],
  ],
  help: HELP,
  run: runCluster,
};

async function runCluster(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      kubeconfig: { type: "string" },
      out: { type: "string" },
      config: { type: "string" },
      server: { type: "string" },
      namespace: { type: "string", default: "switchyard" },
      "service-account": { type: "string", default: "switchyard-hub" },
      timeout: { type: "string", default: "30s" },
    },
    { positionals: true },
  );
  const [sub, name, ...extra] = positionals;
  if (sub !== "join" && sub !== "leave")
    usageError(
      `cluster: the command is \`cluster join NAME\` or \`cluster leave NAME\` (got "${sub ?? ""}")`,
    );
  if (!name) usageError(`cluster ${sub}: give the cluster's NAME (as the hub calls it)`);
  if (extra.length > 0) usageError(`unexpected argument "${extra[0]}"; see switchyard-hub cluster --help`);
  if (!values.kubeconfig)
    usageError(`cluster ${sub}: give --kubeconfig ADMIN.kubeconfig (the member cluster's admin)`);
  const names = { namespace: values.namespace, serviceAccount: values["service-account"] };
  const bad = checkMemberNames(name, names);
  if (bad) usageError(bad);
  const timeout = parseDuration(values.timeout);
  if (!timeout.ok) usageError(`--timeout: ${timeout.error}`);
  const configFile = values.config ? path.resolve(values.config) : undefined;
  const configText = configFile ? readConfig(configFile) : undefined;
  const objects = computeMemberObjects(name, names);
  const admin = loadAdminKubeconfig(values.kubeconfig);
  const note = (s: string) => void process.stderr.write(`${s}\n`);

  if (sub === "join") {
    const out = path.resolve(
      values.out ??
        (configFile
          ? path.join(path.dirname(configFile), `${name}.kubeconfig`)
          : `/etc/switchyard/${name}.kubeconfig`),
    );
    // the config edit is checked before anything is created in the member
    const nextConfig = configFile ? computeConfigWithCluster(configText!, configFile, name, out) : undefined;
    if (nextConfig && !nextConfig.ok) usageError(nextConfig.error);
    const token = await applyMemberObjects(admin, objects, { timeoutMs: timeout.value, log: note });
    const server = values.server ?? admin.server;
    if (!/^https:\/\/[^\s/]+(\/.*)?$/.test(server)) usageError(`--server "${server}" is not an https:// URL`);
    if (values.server === undefined && /^https:\/\/(127\.|\[::1\]|localhost[:/]|localhost$)/.test(server))
      note(`warning: ${out} names ${server}, a loopback address: a hub on another machine needs --server`);
    const kubeconfig = computeScopedKubeconfig({
      cluster: name,
      server,
      caData: admin.caData,
      token,
      user: `${names.serviceAccount}@${name}`,
    });
    fs.mkdirSync(path.dirname(out), { recursive: true, mode: 0o700 });
    writeWhole(out, kubeconfig, 0o600);
    if (!admin.caData) note(`warning: ${values.kubeconfig} skips TLS verification, and so does ${out}`);
    if (configFile && nextConfig?.ok) {
      writeWhole(configFile, nextConfig.value, fs.statSync(configFile).mode & 0o777);
      note(`cluster ${name} is in ${configFile}: a hub watching it starts watching ${admin.server}`);
    } else note(`serve with: --cluster ${name}=kubeconfig:${out}`);
    process.stdout.write(`${out}\n`);
    return;
  }

  const nextConfig = configFile ? computeConfigWithoutCluster(configText!, configFile, name) : undefined;
  if (nextConfig && !nextConfig.ok) usageError(nextConfig.error);
  const deleted = await deleteMemberObjects(admin, objects);
  note(
    deleted.length
      ? `deleted in ${admin.server}: ${deleted.join(", ")}`
      : `nothing of join's left in ${admin.server}`,
  );
  if (configFile && nextConfig?.ok && nextConfig.value.found) {
    writeWhole(configFile, nextConfig.value.text, fs.statSync(configFile).mode & 0o777);
    note(`cluster ${name} removed from ${configFile}`);
  }
  const kubeconfig = values.out ?? (nextConfig?.ok ? nextConfig.value.kubeconfig : undefined);
  if (kubeconfig && fs.existsSync(kubeconfig)) {
    fs.rmSync(kubeconfig);
    note(`removed ${kubeconfig}`);
  }
}

function readConfig(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    return usageError(`--config ${file}: ${(e as Error).message}`);
  }
}

/** Written whole (temp file + rename): a hub watching the file never reads half of it. */
function writeWhole(file: string, text: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, text, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
