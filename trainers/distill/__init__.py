"""Knowledge distillation: losses, teachers, corpora and the Flash Distillation schedule."""
