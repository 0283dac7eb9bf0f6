"""DroneRoom: persistent self-supervised learning from stereo to monocular vision
(van Hecke et al. 2016). The env is in ``room_env``; the ids are registered in ``envs``."""
