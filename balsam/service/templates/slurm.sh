#!/bin/bash
#SBATCH --job-name=balsam-$launch_id
#SBATCH --nodes=$nodes
#SBATCH --time=$wall_minutes_int
#SBATCH --partition=$queue
#SBATCH --output=$output_path
$account_directive
# Balsam launch $launch_id: $job_mode mode
$umask_command
$activate_command
export BALSAM_DB_PATH=$db_path
export BALSAM_QUEUED_LAUNCH_ID=$launch_id
exec $balsam launcher $scope_args --job-mode $job_mode --time-limit-minutes $launcher_minutes --until-idle
