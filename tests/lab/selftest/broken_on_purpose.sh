# Self-test of the harness, not of the daemon: this scenario is wrong on purpose (it expects
# three paths where the topology has two).  tests/lab.rs checks that running it FAILS and that
# the failure names the step and shows the expected and the actual values.
# lab-timeout: 120
. "$LAB_DIR/lib.sh"

step "two scsi_debug paths"
topo_scsi_debug_2paths

step "count the paths (wrong on purpose)"
expect_eq "sd device count" 3 "$(sd_count)"
echo "not reached: expect_eq must have stopped the scenario"
