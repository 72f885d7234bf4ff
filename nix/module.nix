# NixOS module: services.strata. Builds Strata for the configured layout and
# runs it as a hardened systemd service, from the same unit template as a
# hand install (nix/strata.service.in).
{ self }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.strata;
  inherit (lib) mkEnableOption mkIf mkOption types;
  under = base: dir:
    assert lib.assertMsg (lib.hasPrefix "${base}/" dir) "services.strata: ${dir} must be below ${base}";
    lib.removePrefix "${base}/" dir;
  unitText = builtins.replaceStrings
    [ "@BIN_DIR@" "@RUNTIME_DIR@" "@RUNTIME_DIRECTORY@" "@RUNTIME_DIR_MODE@" "@STATE_DIRECTORY@"
      "@USER@" "@GROUP@" "@DOC_DIR@" "@EXPORT_ROOTS@" ]
    [ "${cfg.package}/bin" cfg.runtimeDir (under "/run" cfg.runtimeDir)
      (if cfg.groupAccess then "0750" else "0700") (under "/var/lib" cfg.stateDir)
      cfg.user cfg.group "${cfg.package}/share/doc/strata"
      (lib.optionalString (cfg.fsRoots != [ ]) "BindReadOnlyPaths=${lib.concatStringsSep " " cfg.fsRoots}") ]
    (builtins.readFile ./strata.service.in);
  unitPackage = pkgs.writeTextDir "lib/systemd/system/strata.service" unitText;
in
{
  options.services.strata = {
    enable = mkEnableOption "Strata, a capability-based service runtime";
    nodeId = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";
      default = "local";
      description = "Names this node in token issuers (identity@<nodeId>).";
    };
    runtimeDir = mkOption {
      type = types.str;
      default = "/run/strata";
      description = "Sockets, the published key set and the revocation list (below /run).";
    };
    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/strata";
      description = "Signing keys, revocation log, operator token and audit log (below /var/lib).";
    };
    fsRoots = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/srv/data" ];
      description = "Directories the fs service may serve (read-only).";
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
        inherit (cfg) runtimeDir stateDir nodeId fsRoots groupAccess;
      };
      defaultText = lib.literalExpression "strata built for this layout";
      description = "The Strata build; its layout must match the options above.";
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
