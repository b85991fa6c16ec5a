"""latentbench: which latent space should my generator live in?"""

__version__ = "0.1.0"
