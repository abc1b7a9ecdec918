"""mishaudit: audit the numerical accuracy of formulations of Mish, mish(x) = x*tanh(log1p(exp(x)))."""

__version__ = "0.1.0"
