{
  description = "Strata: a capability-based service runtime on Deno";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs:
        let
          # The installed form (deno run launchers on nixpkgs' deno); see nix/package.nix.
          strata = pkgs.callPackage ./nix/package.nix { src = self; };
          one = name: pkgs.runCommand "${name}" { meta.mainProgram = name; } ''
            mkdir -p $out/bin && ln -s ${strata}/bin/${name} $out/bin/${name}
          '';
        in
        {
          default = strata;
          # The compiled form: deno compile binaries on nixpkgs' denort.
          compiled = strata.override { form = "compiled"; };
          # The supervisor runs the launchers next to it, so it is the whole set.
          supervisor = strata;
          strata-ctl = one "strata-ctl";
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell { packages = [ pkgs.deno pkgs.nodejs ]; };
      });

      nixosModules.strata = import ./nix/module.nix { inherit self; };
      nixosModules.default = self.nixosModules.strata;
    };
}
