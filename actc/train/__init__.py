"""Training the rewritten program with Paddle: QAT, distillation, task loss (the `train`
stage). ``prepare`` turns the IR into a trainable program, ``optim`` builds Paddle's optimizer
and LR schedule from the recipe, ``loop`` runs, evaluates, checkpoints and writes the trained
state back into the IR."""
