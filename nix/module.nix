# NixOS module: services.strata. Builds Strata for the configured layout, in
# the installed form (deno run launchers, the default) or the compiled form
# (deno compile binaries on nixpkgs' denort), and runs it as a hardened systemd
# service from the same unit template as a hand install (nix/strata.service.in),
# with the same checks as scripts/unit.ts: a path systemd would misread is
# refused at evaluation, not rendered.
{ self }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.strata;
  inherit (lib) mkEnableOption mkIf mkOption types;

  # The rules of scripts/unit.ts (checkUnitPath, under, checkName), in Nix.
  checkPath = what: path:
    if builtins.match "(/[A-Za-z0-9._@+-]+)+" path == null
      || builtins.match ".*/\\.\\.?(/.*)?" path != null
    then throw "services.strata: ${what} must be an absolute, normalised path of letters, digits and . _ @ + - (no ., .., // or trailing /): \"${path}\""
    else path;
  under = base: what: dir:
    let checked = checkPath what dir;
    in
    if builtins.substring 0 (builtins.stringLength base + 1) checked != "${base}/"
    then throw "services.strata: ${what} must be below ${base} for systemd to manage it: ${dir}"
    else builtins.substring (builtins.stringLength base + 1) (-1) checked;
  checkName = what: name:
    if builtins.match "[a-z_][a-z0-9_-]{0,31}" name == null
    then throw "services.strata: ${what} must be a user or group name ([a-z_][a-z0-9_-]*): ${name}"
    else name;
  checkNodeId = id:
    if builtins.match "[A-Za-z0-9][A-Za-z0-9._-]{0,62}" id == null
    then throw "services.strata: nodeId must be 1-63 letters, digits, \".\", \"_\" or \"-\": ${id}"
    else id;
  # services.strata.cluster: its keys, each the option (and STRATA_ variable)
  # `deno task install` and `deno task compile` take; paths are checked like the layout's.
  clusterKeys = {
    name = { flag = "cluster"; path = false; };
    etcdEndpoints = { flag = "etcd-endpoints"; path = false; };
    root = { flag = "cluster-root"; path = true; };
    ca = { flag = "cluster-ca"; path = true; };
    peers = { flag = "cluster-peers"; path = false; };
    partitionBoundMs = { flag = "partition-bound-ms"; path = false; };
    etcdCa = { flag = "etcd-ca"; path = true; };
    etcdCert = { flag = "etcd-cert"; path = true; };
    etcdKey = { flag = "etcd-key"; path = true; };
    etcdServerName = { flag = "etcd-server-name"; path = false; };
    registryListen = { flag = "registry-listen"; path = false; };
    identityListen = { flag = "identity-listen"; path = false; };
    fsListen = { flag = "fs-listen"; path = false; };
    tlsCert = { flag = "tls-cert"; path = true; };
    tlsKey = { flag = "tls-key"; path = true; };
    tlsCa = { flag = "tls-ca"; path = true; };
  };
  # The build's settings: { "<flag>" = value; } for the options given; a key
  # not in clusterKeys, or a path systemd or Deno's flags would misread, is refused.
  clusterSettings =
    if cfg.cluster == null then { }
    else
      let
        given = builtins.attrNames cfg.cluster;
        unknown = builtins.filter (k: !(clusterKeys ? ${k})) given;
        required = builtins.filter (k: !(cfg.cluster ? ${k})) [ "name" "etcdEndpoints" "root" ];
        value = k:
          let v = cfg.cluster.${k};
          in
          if clusterKeys.${k}.path then checkPath "cluster.${k}" v
          else if builtins.match "[A-Za-z0-9._:/@+=-]+(,[A-Za-z0-9._:/@+=-]+)*" v == null
          then throw "services.strata: cluster.${k} must be letters, digits and . _ : / @ + = - (lists comma-separated): ${v}"
          else v;
      in
      if unknown != [ ] then throw "services.strata: cluster.${builtins.head unknown} is not a cluster setting (one of ${lib.concatStringsSep ", " (builtins.attrNames clusterKeys)})"
      else if required != [ ] then throw "services.strata: cluster mode needs cluster.${builtins.head required} (name, etcdEndpoints and root)"
      else builtins.listToAttrs (builtins.map (k: { name = clusterKeys.${k}.flag; value = value k; }) given);

  supervisor = {
    installed = "strata-supervisor";
    compiled = "supervisor";
  };

  unitText =
    let
      values = {
        "@EXEC_START@" = "${cfg.package}/bin/${supervisor.${cfg.form} or (throw "services.strata: form must be installed or compiled: ${cfg.form}")}";
        "@RUNTIME_DIR@" = cfg.runtimeDir;
        "@RUNTIME_DIRECTORY@" = under "/run" "runtimeDir" cfg.runtimeDir;
        "@RUNTIME_DIR_MODE@" = if cfg.groupAccess then "0750" else "0700";
        "@STATE_DIRECTORY@" = under "/var/lib" "stateDir" cfg.stateDir;
        "@USER@" = checkName "user" cfg.user;
        "@GROUP@" = checkName "group" cfg.group;
        "@DOC_DIR@" = "${cfg.package}/share/doc/strata";
        "@EXPORT_ROOTS@" =
          if cfg.fsRoots == [ ] then ""
          else "BindReadOnlyPaths=${lib.concatStringsSep " " (builtins.map (checkPath "fsRoots") cfg.fsRoots)}";
        # A node that talks TCP (cluster mode) keeps the host's network; see scripts/unit.ts.
        "@PRIVATE_NETWORK@" = if network then "no" else "yes";
        "@ADDRESS_FAMILIES@" = if network then "AF_UNIX AF_INET AF_INET6" else "AF_UNIX";
        "@IP_ADDRESS_DENY@" =
          if network then "# IPAddressDeny unset: this node dials etcd and other nodes, and they dial its\n# tcp:// endpoints (mutual TLS); each program may dial only its exact host:port grants."
          else "IPAddressDeny=any";
      };
      names = builtins.attrNames values;
    in
    builtins.seq (checkNodeId cfg.nodeId) (builtins.deepSeq clusterSettings
      (builtins.replaceStrings names (builtins.map (n: values.${n}) names)
        (builtins.readFile ./strata.service.in)));
  network = cfg.cluster != null;
  unitPackage = pkgs.writeTextDir "lib/systemd/system/strata.service" unitText;
in
{
  options.services.strata = {
    enable = mkEnableOption "Strata, a capability-based service runtime";
    form = mkOption {
      type = types.enum [ "installed" "compiled" ];
      default = "installed";
      description = ''
        "installed": launchers that `deno run` each program with its flags, on
        nixpkgs' deno (the form tested under a real systemd). "compiled":
        `deno compile` binaries, built on nixpkgs' denort.
      '';
    };
    nodeId = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";
      default = "local";
      description = "Names this node in token issuers (identity@<nodeId>).";
    };
    runtimeDir = mkOption {
      type = types.str;
      default = "/run/strata";
      description = "Sockets, the published key set and the revocation list (normalised, below /run).";
    };
    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/strata";
      description = "Signing keys, revocation log, operator token and audit log (normalised, below /var/lib).";
    };
    fsRoots = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/srv/data" ];
      description = "Directories the fs service may serve, read-only (absolute, normalised; each must exist).";
    };
    groupAccess = mkOption {
      type = types.bool;
      default = false;
      description = "Let members of the group connect to the sockets (0660, runtime dir 0750).";
    };
    user = mkOption {
      type = types.str;
      default = "strata";
      description = "User the services run as; created when left at the default.";
    };
    group = mkOption {
      type = types.str;
      default = "strata";
      description = "Group the services run as; created when left at the default.";
    };
    cluster = mkOption {
      type = types.nullOr (types.attrsOf types.str);
      default = null;
      example = {
        name = "prod";
        etcdEndpoints = "http://10.0.0.1:2379,http://10.0.0.2:2379";
        root = "/etc/strata/root.pub";
        ca = "/etc/strata/ca.pem";
        fsListen = "tcp://10.0.0.1:7402";
        tlsCert = "/etc/strata/node.pem";
        tlsKey = "/etc/strata/node.key";
      };
      description = ''
        Cluster mode (docs/cluster.md): the node shares trust and revocations
        through etcd. Keys: name, etcdEndpoints, root (required); ca, peers,
        partitionBoundMs, etcdCa, etcdCert, etcdKey, etcdServerName,
        registryListen, identityListen, fsListen, tlsCert, tlsKey, tlsCa. Each
        is the `deno task install` option of the same name (--etcd-endpoints,
        ...); lists are comma-separated. The files must be readable by the
        service user. null: a single node.
      '';
    };
    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default.override {
        inherit (cfg) form runtimeDir stateDir nodeId fsRoots groupAccess;
        settings = clusterSettings;
      };
      defaultText = lib.literalExpression "strata built in this form for this layout";
      description = "The Strata build; its form and layout must match the options above.";
    };
  };

  config = mkIf cfg.enable {
    systemd.packages = [ unitPackage ];
    systemd.services.strata.wantedBy = [ "multi-user.target" ];
    environment.systemPackages = [ cfg.package ];
    users.users = mkIf (cfg.user == "strata") {
      strata = {
        isSystemUser = true;
        group = cfg.group;
        description = "Strata services";
      };
    };
    users.groups = mkIf (cfg.group == "strata") { strata = { }; };
  };
}
