"""Planning with a trained controller and its world model.

cem        the Cross-Entropy Method over real-action sequences (jitted, vmapped), goal costs, the
           receding-horizon loop; knows nothing about models
protocols  the droid, recon and synthetic protocols (lawm-plan's engine): episodes, the controller's
           planning cost, scores against zero- and random-action baselines, plan-config checks
eval_clips the droid and recon episodes: a seeded sample of held-out record clips spread over episodes
metrics    Δxyz, ATE, RPE, final position error (pure numpy)
pictures   planned vs true trajectories as PNG
"""
