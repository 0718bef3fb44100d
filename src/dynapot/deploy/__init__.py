"""From the stored network picture to the honeyd configuration the sensor answers from.

`deployer` plans one network against the current deployment and writes the result;
`honeyd_export` turns a plan into honeyd's configuration model.
"""

from dynapot.deploy.deployer import Deployer, Deployment, load_catalog, staged_write, write_atomically

__all__ = ["Deployer", "Deployment", "load_catalog", "staged_write", "write_atomically"]
