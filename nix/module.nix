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
      };
      names = builtins.attrNames values;
    in
    builtins.seq (checkNodeId cfg.nodeId)
      (builtins.replaceStrings names (builtins.map (n: values.${n}) names)
        (builtins.readFile ./strata.service.in));
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
    package = mkOption {
      type = types.package;
      default = self.packages.${pkgs.stdenv.hostPlatform.system}.default.override {
        inherit (cfg) form runtimeDir stateDir nodeId fsRoots groupAccess;
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
