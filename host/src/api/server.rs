//! Serving the admin API beside the pipelines, not among them.

use axum::Router;

/// The admin API served from a thread and a tokio runtime of its own, so
/// that what pipelines do on theirs (sinks encoding and writing batches,
/// which can keep both of a small host's async threads for a while) never
/// holds an answer up: a status call waits for the supervisor's short
/// critical sections only.
#[derive(Debug)]
pub struct Server {
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Serve `router` on `listener` until [`Server::stop`].
    pub fn start(listener: std::net::TcpListener, router: Router) -> std::io::Result<Server> {
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("sluice-api".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        })?;
        Ok(Server { address, stop: Some(stop), thread: Some(thread) })
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Stop taking connections, let the requests under way finish, and
    /// wait for the thread to end. Blocks.
    pub fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(served)) => served,
            Some(Err(_)) => Err(std::io::Error::other("the admin API's thread panicked")),
            None => Ok(()),
        }
    }
}
